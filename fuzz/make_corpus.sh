#!/usr/bin/env bash
# Seed corpora of the fuzz targets, made from real files on demand (nothing of ../shared is committed):
#   bash fuzz/make_corpus.sh AIRM_BIN SEEDS_TOOL OUT [SHARED]   ->  OUT/<target>/...
# (SEEDS_TOOL: the fuzz_make_weights_seeds program of the fuzz build)
# Photos and masks from `airm synth` and OpenCV (every format and depth we read), label maps (8/16-bit,
# palette PNG), SPLITS.md files, our JSON configs, small weights files of both kinds, two of the
# pretrained TFLite files (when ../shared is there), option strings.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
airm=$(realpath "$1")
seeds_tool=$(realpath "$2")
out=$3
shared=${4:-$src/../shared}
python=${PYTHON:-/usr/bin/python3}
mkdir -p "$out"/{fuzz_image,fuzz_label_map,fuzz_splits,fuzz_config,fuzz_weights,fuzz_tflite,fuzz_refine_options}
tmp=$(mktemp -d /tmp/airm-corpus.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# Photos and masks.
"$airm" synth --size 61x47 --count 2 --seed 11 --coarse perturb --out "$tmp/jpg" --quiet > /dev/null
"$airm" synth --size 40x33 --count 1 --seed 12 --format png --out "$tmp/png" --quiet > /dev/null
cp "$tmp"/jpg/images/* "$tmp"/png/images/* "$tmp"/jpg/coarse/* "$out/fuzz_image/"
"$python" - "$tmp/png/images" "$out/fuzz_image" "$out/fuzz_label_map" <<'PY'
import glob, struct, sys, zlib
import cv2, numpy as np
src, images, labels = sys.argv[1:4]
img = cv2.imread(glob.glob(src + "/*.png")[0])
small = cv2.resize(img, (19, 13))
cv2.imwrite(images + "/gray16.png", (cv2.cvtColor(small, cv2.COLOR_BGR2GRAY).astype(np.uint16) * 257))
cv2.imwrite(images + "/rgba.png", cv2.cvtColor(small, cv2.COLOR_BGR2BGRA))
cv2.imwrite(images + "/photo.bmp", small)
cv2.imwrite(images + "/photo.tiff", small)
cv2.imwrite(images + "/photo.webp", small)
cv2.imwrite(images + "/photo_progressive.jpg", small, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])
ids = (np.arange(13 * 19).reshape(13, 19) // 60).astype(np.uint8)
cv2.imwrite(labels + "/ids8.png", ids)
cv2.imwrite(labels + "/ids16.png", ids.astype(np.uint16) * 300)
cv2.imwrite(labels + "/ids_as_colour.png", cv2.merge([ids, ids, ids]))
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
h, w = ids.shape
raw = b"".join(b"\0" + bytes(row) for row in ids)
png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 3, 0, 0, 0))
       + chunk(b"PLTE", bytes([0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0, 0, 0, 128]))
       + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
open(labels + "/palette.png", "wb").write(png)
PY

# Split files.
printf '| split | sets |\n|---|---|\n| train | a,b |\n| val | c |\n' > "$out/fuzz_splits/table.md"
printf 'train: synth_train\nval: synth_val\n' > "$out/fuzz_splits/lines.md"
[ -f "$shared/data/SPLITS.md" ] && cp "$shared/data/SPLITS.md" "$out/fuzz_splits/shared_SPLITS.md"

# Configs (ours).
for f in "$src"/configs/*.json "$src"/configs/segmenter/*.json "$src"/configs/train/*.json; do
  cp "$f" "$out/fuzz_config/$(basename "$(dirname "$f")")_$(basename "$f")"
done

# Weights: small files of both kinds (a real model's file is megabytes, too slow to mutate).
"$seeds_tool" "$out/fuzz_weights" "$src"
pre=$shared/pretrained
if [ -d "$pre" ]; then
  for f in "$pre"/*dm05*.tflite "$pre"/mobilenet_v2_1.0_224_quant.tflite; do [ -f "$f" ] && cp "$f" "$out/fuzz_tflite/"; done
fi

# Option strings: scales, newline, output size.
printf '0.125,0.25,0.5,1\n3840x2160' > "$out/fuzz_refine_options/4k"
printf 'auto' > "$out/fuzz_refine_options/auto"
printf '0.5,1\n100X100' > "$out/fuzz_refine_options/two"
printf '1\n' > "$out/fuzz_refine_options/one"
