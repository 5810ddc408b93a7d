#!/usr/bin/python3
"""Independent check of airm's metrics (definitions: docs/METRICS.md).

Scores predicted masks against ground-truth masks with numpy + OpenCV and
prints pooled IoU, mean IoU and mBA in percent, so that `airm eval` can be
cross-checked by a second implementation.

    check_metrics.py --gt-dir GT --pred-dir PRED [--ignore-dir IGN] [--csv FILE]

Files are matched by base name: GT/NAME.png with PRED/NAME.png (and
IGN/NAME.png, non-zero = ignored, where present). Run it with the system
interpreter (/usr/bin/python3) with Debian's python3-opencv and python3-numpy.
"""

import argparse
import csv
import math
import os
import sys

import cv2
import numpy as np

NUM_RADII = 5


def radius_sequence(width, height):
    """CascadePSP's radii: 1 + int((r_max - 1) / 5 * i), int() truncating."""
    r_max = (width + height) / 300.0
    out = []
    for i in range(NUM_RADII):
        r = 1 + int((r_max - 1.0) / NUM_RADII * i)
        out.append(max(r, 1))
    return out


def load_mask(path):
    """An 8-bit single-channel image, or exit with a message."""
    m = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if m is None:
        sys.exit(f"{path}: cannot read")
    if m.dtype != np.uint8 or m.ndim != 2:
        sys.exit(f"{path}: expected an 8-bit single-channel mask, got {m.dtype} with shape {m.shape}")
    return m


def score(gt_img, pred_img, ignore_img=None):
    """Returns dict with intersection, union, iou, accuracies, band sizes, mba."""
    h, w = gt_img.shape
    if pred_img.shape != gt_img.shape:
        pred_img = cv2.resize(pred_img, (w, h), interpolation=cv2.INTER_LINEAR)
    gt = gt_img > 127
    pred = pred_img > 127
    if ignore_img is None:
        valid = np.ones_like(gt)
    else:
        if ignore_img.shape != gt_img.shape:
            raise ValueError(f"ignore mask of shape {ignore_img.shape}, ground truth {gt_img.shape}")
        valid = ignore_img == 0

    inter = int(np.count_nonzero(gt & pred & valid))
    union = int(np.count_nonzero((gt | pred) & valid))
    iou = 100.0 if union == 0 else 100.0 * inter / union

    gt_u8 = gt.astype(np.uint8)
    agree = gt == pred
    accs, bands = [], []
    for r in radius_sequence(w, h):
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        band = (cv2.morphologyEx(gt_u8, cv2.MORPH_GRADIENT, kernel) > 0) & valid
        n = int(np.count_nonzero(band))
        bands.append(n)
        accs.append(100.0 * np.count_nonzero(agree & band) / n if n else math.nan)
    mba = math.nan if any(math.isnan(a) for a in accs) else sum(accs) / len(accs)
    return {"intersection": inter, "union": union, "iou": iou, "acc": accs, "band": bands, "mba": mba,
            "width": w, "height": h}


def pngs_by_stem(folder):
    out = {}
    for name in sorted(os.listdir(folder)):
        stem, ext = os.path.splitext(name)
        if ext.lower() == ".png" and not name.startswith("."):
            out[stem] = os.path.join(folder, name)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gt-dir", required=True)
    ap.add_argument("--pred-dir", required=True)
    ap.add_argument("--ignore-dir")
    ap.add_argument("--csv", help="write per-image scores to this CSV file ('-' for stdout)")
    args = ap.parse_args()

    gts = pngs_by_stem(args.gt_dir)
    preds = pngs_by_stem(args.pred_dir)
    ignores = pngs_by_stem(args.ignore_dir) if args.ignore_dir else {}
    if not gts:
        sys.exit(f"{args.gt_dir}: no ground-truth *.png")
    missing = sorted(set(gts) - set(preds))
    if missing:
        sys.exit(f"{args.pred_dir}: no prediction for {len(missing)} ground truth(s): {', '.join(missing[:10])}")
    extra = sorted(set(preds) - set(gts))
    if extra:
        print(f"note: {len(extra)} prediction(s) without ground truth skipped", file=sys.stderr)

    rows = []
    for stem, gt_path in gts.items():
        ign = load_mask(ignores[stem]) if stem in ignores else None
        try:
            s = score(load_mask(gt_path), load_mask(preds[stem]), ign)
        except ValueError as e:
            sys.exit(f"{ignores[stem]}: {e}")
        s["name"] = stem
        rows.append(s)

    sum_i = sum(r["intersection"] for r in rows)
    sum_u = sum(r["union"] for r in rows)
    pooled = 100.0 if sum_u == 0 else 100.0 * sum_i / sum_u
    mean_iou = sum(r["iou"] for r in rows) / len(rows)
    with_band = [r["mba"] for r in rows if not math.isnan(r["mba"])]
    mba = sum(with_band) / len(with_band) if with_band else math.nan

    if args.csv:
        out = sys.stdout if args.csv == "-" else open(args.csv, "w", newline="")
        wr = csv.writer(out)
        wr.writerow(["name", "width", "height", "intersection", "union", "iou", "mba"]
                    + [f"acc{i}" for i in range(NUM_RADII)] + [f"band{i}" for i in range(NUM_RADII)])
        for r in rows:
            wr.writerow([r["name"], r["width"], r["height"], r["intersection"], r["union"],
                         f"{r['iou']:.6f}", f"{r['mba']:.6f}"]
                        + [f"{a:.6f}" for a in r["acc"]] + r["band"])
        if out is not sys.stdout:
            out.close()

    print(f"images: {len(rows)} (mBA over {len(with_band)})")
    print(f"pooled IoU: {pooled:.6f}")
    print(f"mean IoU: {mean_iou:.6f}")
    print(f"mBA: {mba:.6f}")


if __name__ == "__main__":
    main()
