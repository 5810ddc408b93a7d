#!/usr/bin/env bash
# Training data with generated scenes: the canonical train split of ../shared/data plus seeded
# `airm synth` scenes (none of them the main job's example scene (seed 0) or the 4K scenes of
# docs/RESULTS.md), in one folder with its own SPLITS.md. The real sets (train and val, from the
# canonical SPLITS.md) are linked, not copied, so in-training validation runs on the canonical val split.
# KIND refiner: 350 scenes of many objects at three sizes (the default refiner's data);
# KIND segmenter: 240 scenes of one main object (`--main-object`, what a salient-object segmenter
# must find; the main job's scene is of that kind).
#
#   bash scripts/trainmix.sh [OUT] [DATA] [KIND]   (defaults: out/trainmix ../shared/data refiner)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-out/trainmix}
data=$(realpath "${2:-../shared/data}")
kind=${3:-refiner}
airm=${AIRM:-build/bin/airm}
[ -f "$data/SPLITS.md" ] || { echo "error: no $data/SPLITS.md" >&2; exit 1; }
sets_of() { awk -F'|' -v s="$1" '$2 ~ "^ *"s" *$" {gsub(/ /, "", $3); print $3}' "$data/SPLITS.md"; }
train=$(sets_of train)
val=$(sets_of val)
[ -n "$train" ] && [ -n "$val" ] || { echo "error: no train or val row in $data/SPLITS.md" >&2; exit 1; }
mkdir -p "$out"
for set in $(echo "$train,$val" | tr ',' ' '); do
  [ -d "$data/$set" ] || { echo "error: $data has no $set" >&2; exit 1; }
  ln -sfn "$data/$set" "$out/$set"
done
# WIDTHxHEIGHT COUNT SEED NAME [FLAG]: scenes of each kind at the sizes given.
case "$kind" in
  refiner) list='960x540 200 1000 synth_540
1920x1080 100 2000 synth_1080
2560x1440 50 3000 synth_1440' ;;
  segmenter) list='960x540 200 5000 synth_main_540 --main-object
1920x1080 40 6000 synth_main_1080 --main-object' ;;
  *) echo "error: expected KIND refiner or segmenter, got $kind" >&2; exit 2 ;;
esac
scenes=$(echo "$list" | awk '{print $4}' | paste -sd, -)
total=$(echo "$list" | awk '{n += $2} END {print n}')
while read -r size count seed name flag; do
  [ -d "$out/$name/masks" ] && [ "$(ls "$out/$name/masks" | wc -l)" -eq "$count" ] && continue
  rm -rf "$out/$name"
  "$airm" synth --size "$size" --count "$count" --seed "$seed" --out "$out/$name" --quiet ${flag:+"$flag"} >&2
done <<< "$list"
cat > "$out/SPLITS.md" <<MD
# Splits of the $kind's training data (scripts/trainmix.sh)

| split | sets | use |
|---|---|---|
| train | $train,$scenes | training only: the canonical train split and $total generated scenes |
| val | $val | in-training validation (the canonical val split) |
MD
echo "$out: train = $train + $scenes; val = $val (linked from $data)" >&2
