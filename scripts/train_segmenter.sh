#!/usr/bin/env bash
# The shipped coarse segmenter (models/segmenter.pt), end to end, in one resumable command: the imported
# PASCAL DeepLabV3-MobileNetV2 (scripts/import_pretrained.sh), the training data (scripts/trainmix.sh
# segmenter: the canonical train split plus 240 generated one-main-object scenes, in out/segmix), then
# `airm train` with configs/train/segmenter_mnv2.json, resumed when RUN already holds a checkpoint.
# The shipped file is one of the run's validated checkpoints (models/segmenter/README.md says which and
# why) exported with `airm model --weights FILE --export models/segmenter.pt --half`.
#
#   bash scripts/train_segmenter.sh [RUN] [SHARED] [-- extra airm train flags]
#   (defaults: runs/segmenter-scenes ../shared; e.g. -- --threads 2 --workers 1 --stop-after 500)
set -euo pipefail
cd "$(dirname "$0")/.."
run=${1:-runs/segmenter-scenes}
shared=${2:-../shared}
shift $(( $# >= 2 ? 2 : $# ))
[ "${1:-}" = "--" ] && shift
airm=${AIRM:-build/bin/airm}
[ -x "$airm" ] || AIRM_TARGETS=airm_cli bash scripts/setup.sh build >&2
bash scripts/import_pretrained.sh "$shared" "$airm" >&2
bash scripts/trainmix.sh out/segmix "$shared/data" segmenter >&2
if [ -f "$run/checkpoint/state.json" ]; then
  exec "$airm" train --out "$run" --resume "$@"
fi
exec "$airm" train --config configs/train/segmenter_mnv2.json --data out/segmix --split train --val val \
  --out "$run" "$@"
