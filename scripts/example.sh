#!/usr/bin/env bash
# The main job on the embedded default: installs what is missing, builds,
# generates a 4K scene with exact ground truth and a coarse mask, and scores
# the coarse mask (IoU, mBA) with an HTML report. Outputs go to out/example/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh build
out=out/example
rm -rf "$out"
./build/bin/airm synth --size 3840x2160 --count 2 --seed 0 --coarse perturb --out "$out/scenes"
./build/bin/airm eval --data "$out/scenes" --coarse --csv "$out/scores.csv" --json "$out/summary.json" \
  --report "$out/report.html"
echo "report: $out/report.html" >&2
