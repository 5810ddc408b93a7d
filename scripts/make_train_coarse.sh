#!/usr/bin/env bash
# The real segmenter's coarse masks the default refiner trains on: the imported
# DeepLabV3-MobileNetV2 (PASCAL, ../shared/pretrained) run zero-shot on every
# image of the train split (`airm segment`, any non-background class =
# foreground), kept where the mask is a usable starting point: IoU with the
# ground truth >= MIN_IOU (default 0.5) and foreground present. A mask that
# outlines another object (or nothing) would teach the refiner to draw objects
# the coarse mask does not mark, which no refiner should do; those images keep
# the synthetic coarse masks only. Made on demand (a product of ../shared data,
# never committed) under runs/coarse/:
#   runs/coarse/deeplab-all/SET/NAME.png   every mask
#   runs/coarse/deeplab-train/SET/NAME.png the kept ones (the config's coarse_dir)
#   runs/coarse/deeplab-train.csv          per-image IoU / mBA of every mask, kept or not
#
#   scripts/make_train_coarse.sh [SHARED_DIR] [AIRM_BINARY]   (MIN_IOU=0.5 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
shared=${1:-../shared}
airm=${2:-build/bin/airm}
data=$shared/data
min_iou=${MIN_IOU:-0.5}
out=runs/coarse
deeplab=runs/pretrained/deeplabv3_mnv2_pascal.pt
[ -x "$airm" ] || { echo "error: $airm not built (scripts/setup.sh)" >&2; exit 1; }
[ -d "$data" ] || { echo "error: no dataset at $data" >&2; exit 1; }
[ -f "$deeplab" ] || bash scripts/import_pretrained.sh "$shared" "$airm" >&2

sets=$(awk -F'|' '$2 ~ "^ *train *$" {gsub(/ /, "", $3); print $3}' "$data/SPLITS.md" | tr ',' ' ')
[ -n "$sets" ] || { echo "error: no train row in $data/SPLITS.md" >&2; exit 1; }
mkdir -p "$out/deeplab-all" "$out/eval"
for set in $sets; do
  if [ ! -d "$out/deeplab-all/$set" ]; then
    echo "make_train_coarse: $set" >&2
    "$airm" segment --segmenter "$deeplab" --images "$data/$set/images" -o "$out/deeplab-all/$set.tmp" --quiet > /dev/null
    mv "$out/deeplab-all/$set.tmp" "$out/deeplab-all/$set"
  fi
  mkdir -p "$out/eval/$set"
  ln -sfn "$(realpath "$data/$set/images")" "$out/eval/$set/images"
  ln -sfn "$(realpath "$data/$set/masks")" "$out/eval/$set/masks"
done
"$airm" eval --data "$out/eval" --pred "$out/deeplab-all" --csv "$out/deeplab-train.csv" --quiet > /dev/null
rm -rf "$out/deeplab-train.tmp"
python3 - "$out" "$min_iou" <<'PY'
import csv, os, shutil, sys
out, min_iou = sys.argv[1], float(sys.argv[2])
kept = total = 0
per_set = {}
for row in csv.DictReader(open(f"{out}/deeplab-train.csv")):
    if row["dataset"] in ("all", "pooled") or not row["name"]:
        continue
    total += 1
    s = per_set.setdefault(row["dataset"], [0, 0])
    s[1] += 1
    if float(row["iou"]) >= 100 * min_iou:
        src = f"{out}/deeplab-all/{row['dataset']}/{row['name']}.png"
        dst = f"{out}/deeplab-train.tmp/{row['dataset']}/{row['name']}.png"
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copyfile(src, dst)
        kept += 1
        s[0] += 1
for name, (k, n) in sorted(per_set.items()):
    print(f"make_train_coarse: {name}: kept {k} of {n}", file=sys.stderr)
print(f"make_train_coarse: kept {kept} of {total} masks (IoU >= {min_iou})", file=sys.stderr)
PY
mv "$out/deeplab-train.tmp" "$out/deeplab-train.new" && rm -rf "$out/deeplab-train" && mv "$out/deeplab-train.new" "$out/deeplab-train"
