#!/usr/bin/env bash
# The shipped refiner (models/airm.pt), end to end, in one resumable command:
# the converted ImageNet MobileNetV2 (scripts/import_pretrained.sh), the
# training data with generated scenes (scripts/trainmix.sh), then
# `airm train` with configs/train/default_refiner.json (4,000 steps of batch 8),
# resumed when RUN already holds a checkpoint. Each step skips what is
# already made. About 2 h 10 min on 2 vCPUs of an AMD EPYC (0.43-0.48 it/s).
#
#   bash scripts/train_default_refiner.sh [RUN] [SHARED] [-- extra airm train flags]
#   (defaults: runs/default-refiner ../shared; e.g. -- --threads 2 --stop-after 1000)
set -euo pipefail
cd "$(dirname "$0")/.."
run=${1:-runs/default-refiner}
shared=${2:-../shared}
shift $(( $# >= 2 ? 2 : $# ))
[ "${1:-}" = "--" ] && shift
airm=${AIRM:-build/bin/airm}
[ -x "$airm" ] || AIRM_TARGETS=airm_cli bash scripts/setup.sh build >&2  # the CLI is all it runs
bash scripts/import_pretrained.sh "$shared" "$airm" >&2
bash scripts/trainmix.sh out/trainmix "$shared/data" >&2
if [ -f "$run/checkpoint/state.json" ] || ls "$run"/checkpoint/*/state.json > /dev/null 2>&1; then
  exec "$airm" train --out "$run" --resume "$@"
fi
exec "$airm" train --config configs/train/default_refiner.json --data out/trainmix --out "$run" "$@"
