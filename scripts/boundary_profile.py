#!/usr/bin/env python3
"""Where a dataset's mask boundaries sit against the photo's edges.

For every image of each SET under DATA (DATA/SET/images/*, DATA/SET/masks/NAME.png) the mask is eroded
(k < 0) or dilated (k > 0) by |k| px (elliptical kernel) for k = -3..3, and the mean colour-gradient
magnitude (3x3 Sobel on CIE Lab, summed over channels) is taken on the inner boundary of each version.
Prints per set the mean profile (each image's normalised to sum 1) and how many images peak at each k.
The measure is relative: masks exact by construction (`airm synth`: a pixel is foreground when the object
covers more than half of it) peak at +1, so a set peaking at 0 or -1 has masks drawn outside that.

    /usr/bin/python3 scripts/boundary_profile.py ../shared/data berkeley_iseg bsds_sod davis345
"""
import os
import sys

import cv2
import numpy as np

OFFSETS = list(range(-3, 4))


def gradient(image):
    lab = cv2.cvtColor(image, cv2.COLOR_BGR2Lab).astype(np.float32)
    gx = cv2.Sobel(lab, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(lab, cv2.CV_32F, 0, 1, ksize=3)
    return np.sqrt((gx ** 2 + gy ** 2).sum(axis=2))


def inner_boundary(mask):
    eroded = cv2.erode(mask, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_REPLICATE)
    b = (mask > 0) & (eroded == 0)
    b[0, :] = b[-1, :] = b[:, 0] = b[:, -1] = False  # the frame is not a boundary
    return b


def profile(image, mask):
    g = gradient(image)
    values = []
    for k in OFFSETS:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * abs(k) + 1,) * 2)
        m = mask if k == 0 else (cv2.dilate(mask, kernel) if k > 0 else cv2.erode(mask, kernel))
        b = inner_boundary(m)
        values.append(g[b].mean() if b.any() else 0.0)
    return np.array(values)


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: boundary_profile.py DATA SET [SET ...]")
    data = sys.argv[1]
    print("| set | images | mean profile k=" + ",".join(f"{k:+d}" for k in OFFSETS) + " | images peaking at k=-1 / 0 / +1 |")
    print("|---|---|---|---|")
    for name in sys.argv[2:]:
        folder = os.path.join(data, name)
        profiles = []
        for file in sorted(os.listdir(os.path.join(folder, "images"))):
            stem = os.path.splitext(file)[0]
            image = cv2.imread(os.path.join(folder, "images", file))
            mask = cv2.imread(os.path.join(folder, "masks", stem + ".png"), cv2.IMREAD_GRAYSCALE)
            if image is None or mask is None:
                sys.exit(f"error: cannot read {file} or its mask in {folder}")
            p = profile(image, (mask > 127).astype(np.uint8))
            if p.sum() > 0:
                profiles.append(p / p.sum())
        P = np.array(profiles)
        peaks = np.bincount(P.argmax(axis=1), minlength=len(OFFSETS))
        mid = OFFSETS.index(0)
        print(f"| {name} | {len(P)} | " + " ".join(f"{v:.3f}" for v in P.mean(axis=0))
              + f" | {peaks[mid - 1]} / {peaks[mid]} / {peaks[mid + 1]} |")


if __name__ == "__main__":
    main()
