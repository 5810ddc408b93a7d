#!/usr/bin/env bash
# The training data of refiner phase 8 (models/airm/README.md): the train split of ../shared/data plus
# 350 generated scenes (`airm synth`, seeded, none of them the main job's example scene, seed 0), in
# one folder with its own SPLITS.md (the real sets are linked, not copied; val is linked too so that
# in-training validation runs on the canonical val split).
#
#   bash scripts/trainmix.sh [OUT] [DATA]   (defaults: out/trainmix ../shared/data)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-out/trainmix}
data=$(realpath "${2:-../shared/data}")
airm=${AIRM:-build/bin/airm}
[ -d "$data" ] || { echo "error: no dataset at $data" >&2; exit 1; }
mkdir -p "$out"
for set in davis345 coco_mval_subset weizmann_horses berkeley_iseg bsds_sod; do
  [ -d "$data/$set" ] || { echo "error: $data has no $set" >&2; exit 1; }
  ln -sfn "$data/$set" "$out/$set"
done
# WIDTHxHEIGHT COUNT SEED NAME: three scales of the same kind of scene.
while read -r size count seed name; do
  [ -d "$out/$name/masks" ] && [ "$(ls "$out/$name/masks" | wc -l)" -eq "$count" ] && continue
  rm -rf "$out/$name"
  "$airm" synth --size "$size" --count "$count" --seed "$seed" --out "$out/$name" --threads 1 --quiet >&2
done <<'SCENES'
960x540 200 1000 synth_540
1920x1080 100 2000 synth_1080
2560x1440 50 3000 synth_1440
SCENES
cat > "$out/SPLITS.md" <<'MD'
# Splits for refiner phase 8: the canonical train split plus generated scenes (scripts/trainmix.sh)

| split | sets | images | use |
|---|---|---|---|
| train | davis345, coco_mval_subset, weizmann_horses, synth_540, synth_1080, synth_1440 | 1263 | training only |
| val | berkeley_iseg, bsds_sod | 400 | in-training validation (the canonical val split) |
MD
echo "$out: train = 913 real images + 350 generated scenes; val linked from $data" >&2
