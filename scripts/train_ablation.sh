#!/usr/bin/env bash
# The refiner ablation of docs/RESULTS.md with one budget: each row of the paper's Table 4 trained by
# configs/train/ablation_<row>.json (the default refiner's data and losses, 500 iterations of batch 8
# from random weights) into runs/ablation/<row>. Re-running the script resumes an unfinished run and
# skips finished ones, so it can be stopped (Ctrl-C checkpoints) and started again at will.
#
#   bash scripts/train_ablation.sh [DATA] [THREADS]     (defaults: ../shared/data 2)
#   then, per row: bash scripts/results.sh runs/ablation/<row>/best.pt out/ablation/<row>
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data}
threads=${2:-2}
airm=${AIRM:-build/bin/airm}
mkdir -p runs/ablation
for row in crm_r50_sirmf r50_airmf mit_b1_sirmf mit_b1_airmf airm_mit_b1; do
  out=runs/ablation/$row
  if [ -f "$out/best.json" ] && grep -q "finished at" "$out.log" 2>/dev/null; then
    echo "$row: finished" >&2
  elif [ -d "$out/checkpoint" ]; then
    "$airm" train --out "$out" --resume --threads "$threads" >> "$out.log" 2>&1
  else
    "$airm" train --config "configs/train/ablation_$row.json" --data "$data" --split train --val val \
      --out "$out" --threads "$threads" >> "$out.log" 2>&1
  fi
done
