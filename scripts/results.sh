#!/usr/bin/env bash
# Quality of a refiner on the canonical splits, as docs/RESULTS.md reports it: for each split (val,
# probe) and degradation (perturb seed 0, low-res x8), the coarse masks are made with `airm degrade`,
# refined with `airm refine` (batch mode, default options), and both are scored with `airm eval`.
# Prints one Markdown table; the per-image CSVs and JSON summaries stay in OUT.
#
#   bash scripts/results.sh [MODEL] [OUT] [DATA]   (defaults: models/airm.pt out/results ../shared/data)
#   SPLITS="val" MODES="perturb" EXTRA="--bf16" bash scripts/results.sh ...   (subsets, refine options)
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-models/airm.pt}
out=${2:-out/results}
data=${3:-../shared/data}
airm=${AIRM:-build/bin/airm}
splits=${SPLITS:-val probe}
modes=${MODES:-perturb lowres}
[ -f "$model" ] || { echo "error: no model at $model" >&2; exit 1; }
[ -d "$data" ] || { echo "error: no dataset at $data" >&2; exit 1; }
mkdir -p "$out"
for split in $splits; do
  for mode in $modes; do
    d="$out/$split-$mode"
    [ -d "$d" ] || "$airm" degrade --data "$data" --split "$split" --mode "$mode" --seed 0 --out "$d" >&2
    for set in "$d"/*/; do
      set=$(basename "$set")
      "$airm" refine --model "$model" --images "$d/$set/images" --coarse "$d/$set/coarse" -o "$d-refined/$set" \
        --quiet ${EXTRA:-} >&2
    done
    "$airm" eval --data "$d" --coarse --json "$d-coarse.json" --csv "$d-coarse.csv" --quiet > /dev/null
    "$airm" eval --data "$d" --pred "$d-refined" --json "$d-refined.json" --csv "$d-refined.csv" --quiet > /dev/null
  done
done
/usr/bin/python3 - "$out" "$splits" "$modes" <<'PY'
import json, sys
out, splits, modes = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
names = {"perturb": "perturb (seed 0)", "lowres": "low-res x8"}
print("| split | degradation | set | images | coarse IoU | refined IoU | coarse mBA | refined mBA |")
print("|---|---|---|---|---|---|---|---|")
for split in splits:
    for mode in modes:
        c = json.load(open(f"{out}/{split}-{mode}-coarse.json"))["summaries"]
        r = {s["dataset"]: s for s in json.load(open(f"{out}/{split}-{mode}-refined.json"))["summaries"]}
        for s in c:
            t = r[s["dataset"]]
            print(f"| {split} | {names.get(mode, mode)} | {s['dataset']} | {s['images']} | {s['iou']:.2f} | "
                  f"{t['iou']:.2f} | {s['mba']:.2f} | {t['mba']:.2f} |")
PY
