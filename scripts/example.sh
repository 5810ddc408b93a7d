#!/usr/bin/env bash
# The main job on the embedded default: installs what is missing, builds, generates a 4K scene with
# exact ground truth and a coarse mask (`airm synth --main-object`, seeded: the same scene on every
# machine; one main object, as a photo a user would segment has), refines
# the coarse mask at full resolution with the shipped model (models/airm.pt), and writes the refined
# mask, an overlay (red: coarse boundary, green: refined) and the coarse-vs-refined scores. Then the
# one-command path on the same photo given no coarse mask: the shipped segmenter
# (models/segmenter.pt), then the refiner, with its own overlay and scores.
# Outputs go to out/example/.
set -euo pipefail
cd "$(dirname "$0")/.."
AIRM_TARGETS=airm_cli bash scripts/setup.sh build  # the library and the CLI only; scripts/test.sh builds the rest
airm=./build/bin/airm
out=out/example
rm -rf "$out"
"$airm" synth --size 3840x2160 --count 1 --seed 0 --main-object --coarse perturb --out "$out/scene" --quiet
name=synth_s0_0000
mkdir -p "$out/refined"
"$airm" refine "$out/scene/images/$name.jpg" "$out/scene/coarse/$name.png" --model models/airm.pt \
  -o "$out/refined/$name.png" --overlay "$out/overlay.jpg"
echo "coarse mask:" >&2
"$airm" eval --data "$out/scene" --coarse --quiet
echo "refined mask:" >&2
"$airm" eval --data "$out/scene" --pred "$out/refined" --quiet --report "$out/report.html"
echo "refined mask: $out/refined/$name.png, overlay: $out/overlay.jpg, report: $out/report.html" >&2

# No coarse mask given: segmenter, then refiner, in one command.
"$airm" refine "$out/scene/images/$name.jpg" -o "$out/pipeline/refined/$name.png" --model models/airm.pt \
  --segmenter models/segmenter.pt --save-coarse "$out/pipeline/segmented/$name.png" \
  --overlay "$out/pipeline/overlay.jpg"
echo "no coarse mask given: the segmenter's mask:" >&2
"$airm" eval --data "$out/scene" --pred "$out/pipeline/segmented" --quiet
echo "no coarse mask given: segmenter + refiner:" >&2
"$airm" eval --data "$out/scene" --pred "$out/pipeline/refined" --quiet
echo "one command: $out/pipeline/refined/$name.png, overlay: $out/pipeline/overlay.jpg" >&2
