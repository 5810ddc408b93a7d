#!/usr/bin/env bash
# The whole pipeline on images given no coarse mask, as docs/RESULTS.md reports it: for each set of a
# split, `airm refine --images` without --coarse (the coarse segmenter runs first, its masks are kept
# with --save-coarse), then `airm eval` of the segmenter's masks and of the refined ones.
# Prints one Markdown table; masks, per-image CSVs and JSON summaries stay in OUT.
#
#   bash scripts/pipeline.sh [SEGMENTER] [REFINER] [OUT] [DATA]
#     (defaults: models/segmenter.pt models/airm.pt out/pipeline ../shared/data)
#   SPLITS="val" EXTRA="--bf16" bash scripts/pipeline.sh ...   (subsets, refine options)
set -euo pipefail
cd "$(dirname "$0")/.."
segmenter=${1:-models/segmenter.pt}
refiner=${2:-models/airm.pt}
out=${3:-out/pipeline}
data=${4:-../shared/data}
airm=${AIRM:-build/bin/airm}
splits=${SPLITS:-val probe}
for f in "$segmenter" "$refiner"; do [ -f "$f" ] || { echo "error: no weights at $f" >&2; exit 1; }; done
[ -d "$data" ] || { echo "error: no dataset at $data" >&2; exit 1; }
mkdir -p "$out"
for split in $splits; do
  sets=$(/usr/bin/python3 - "$data/SPLITS.md" "$split" <<'PY'
import re, sys
for line in open(sys.argv[1]):
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    if len(cells) >= 2 and cells[0] == sys.argv[2]:
        print(" ".join(s.strip() for s in cells[1].split(",")))
PY
)
  [ -n "$sets" ] || { echo "error: split $split not in $data/SPLITS.md" >&2; exit 1; }
  for set in $sets; do
    "$airm" refine --images "$data/$set/images" --out "$out/$split-refined/$set" --save-coarse "$out/$split-segmented/$set" \
      --segmenter "$segmenter" --model "$refiner" --quiet ${EXTRA:-} > /dev/null
  done
  for kind in segmented refined; do
    "$airm" eval --data "$data" --split "$split" --pred "$out/$split-$kind" --json "$out/$split-$kind.json" \
      --csv "$out/$split-$kind.csv" --quiet > /dev/null
  done
done
/usr/bin/python3 - "$out" "$splits" <<'PY'
import json, sys
out, splits = sys.argv[1], sys.argv[2].split()
print("| split | set | images | segmenter IoU | segmenter + refiner IoU | segmenter mBA | segmenter + refiner mBA |")
print("|---|---|---|---|---|---|---|")
for split in splits:
    s = json.load(open(f"{out}/{split}-segmented.json"))["summaries"]
    r = {x["dataset"]: x for x in json.load(open(f"{out}/{split}-refined.json"))["summaries"]}
    for a in s:
        b = r[a["dataset"]]
        print(f"| {split} | {a['dataset']} | {a['images']} | {a['iou']:.2f} | {b['iou']:.2f} | {a['mba']:.2f} | {b['mba']:.2f} |")
PY
