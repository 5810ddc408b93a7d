#!/usr/bin/env bash
# Converts the Apache-2.0 TFLite files of ../shared/pretrained into airm
# weights files under runs/pretrained/ (conversions of ../shared data: made
# on demand, never committed; runs/ is ignored by git).
#   scripts/import_pretrained.sh [SHARED_DIR] [AIRM_BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
shared=${1:-../shared}
airm=${2:-build/bin/airm}
src="$shared/pretrained"
out=runs/pretrained
mkdir -p "$out"
[ -x "$airm" ] || { echo "error: $airm not built (scripts/setup.sh)" >&2; exit 1; }
[ -d "$src" ] || { echo "error: no $src" >&2; exit 1; }
import() {  # tflite arch out
  if [ -s "$out/$3" ] && [ "$out/$3" -nt "$src/$1" ]; then return; fi
  "$airm" model --import-tflite "$src/$1" --arch "$2" --export "$out/$3"
}
import tf2_mobilenet_v2_1.0_224_ptq.tflite mobilenet_v2 mobilenet_v2_imagenet.pt
import mobilenet_v2_1.0_224_quant.tflite mobilenet_v2 mobilenet_v2_imagenet_slim.pt
import deeplabv3_mnv2_pascal_quant.tflite deeplabv3_mnv2 deeplabv3_mnv2_pascal.pt
import deeplabv3_mnv2_dm05_pascal_quant.tflite deeplabv3_mnv2 deeplabv3_mnv2_dm05_pascal.pt
