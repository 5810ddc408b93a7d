#!/usr/bin/env bash
# The default refiner's training data: the canonical train split of ../shared/data plus 350 generated
# scenes (`airm synth`, seeded, none of them the main job's example scene (seed 0) or the 4K scenes of
# docs/RESULTS.md), in one folder with its own SPLITS.md. The real sets (train and val, from the
# canonical SPLITS.md) are linked, not copied, so in-training validation runs on the canonical val split.
#
#   bash scripts/trainmix.sh [OUT] [DATA]   (defaults: out/trainmix ../shared/data)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-out/trainmix}
data=$(realpath "${2:-../shared/data}")
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
# WIDTHxHEIGHT COUNT SEED NAME: three scales of the same kind of scene.
scenes="synth_540,synth_1080,synth_1440"
while read -r size count seed name; do
  [ -d "$out/$name/masks" ] && [ "$(ls "$out/$name/masks" | wc -l)" -eq "$count" ] && continue
  rm -rf "$out/$name"
  "$airm" synth --size "$size" --count "$count" --seed "$seed" --out "$out/$name" --quiet >&2
done <<'SCENES'
960x540 200 1000 synth_540
1920x1080 100 2000 synth_1080
2560x1440 50 3000 synth_1440
SCENES
cat > "$out/SPLITS.md" <<MD
# Splits of the default refiner's training data (scripts/trainmix.sh)

| split | sets | use |
|---|---|---|
| train | $train,$scenes | training only: the canonical train split and 350 generated scenes |
| val | $val | in-training validation (the canonical val split) |
MD
echo "$out: train = $train + $scenes; val = $val (linked from $data)" >&2
