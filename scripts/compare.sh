#!/usr/bin/env bash
# The refiner beside its peers on the same coarse masks, as docs/RESULTS.md reports it: for each split
# (val, probe, and scenes4k: SCENES4K generated 3840x2160 scenes, `airm synth` seed SCENES4K_SEED (7000), which no
# training data uses) and coarse source (perturb seed 0, low-res x8, the DeepLabV3-MobileNetV2 of
# ../shared/pretrained zero-shot), the coarse masks themselves, OpenCV's guided filter, GrabCut from the
# mask (`airm baseline`) and, when MODEL is given, `airm refine` with default options; all scored with
# `airm eval`. Prints one Markdown table (IoU and mBA in %, s/img = wall time of the batch / images,
# model loading included); per-image CSVs stay in OUT.
#
#   bash scripts/compare.sh [MODEL|-] [OUT] [SHARED]   (defaults: - out/compare ../shared)
#   SPLITS="val scenes4k" SOURCES="perturb deeplab" METHODS="guided" SCENES4K=6 bash scripts/compare.sh ...
#   REUSE=1 bash scripts/compare.sh MODEL   (peers' scores of an earlier run in OUT are kept; only MODEL runs)
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:--}
out=${2:-out/compare}
shared=${3:-../shared}
data=$shared/data
airm=${AIRM:-build/bin/airm}
splits=${SPLITS:-val probe scenes4k}
sources=${SOURCES:-perturb lowres deeplab}
methods=${METHODS:-guided grabcut}
[ "$model" = "-" ] || { [ -f "$model" ] || { echo "error: no model at $model" >&2; exit 1; }; methods="$methods airm"; }
[ -d "$data" ] || { echo "error: no dataset at $data" >&2; exit 1; }
mkdir -p "$out"

# The generated 4K scenes: their own data root with a one-row SPLITS.md.
scenes=$out/scenes4k-data
if [[ " $splits " == *" scenes4k "* ]] && [ ! -d "$scenes" ]; then
  "$airm" synth --size 3840x2160 --count "${SCENES4K:-6}" --seed "${SCENES4K_SEED:-7000}" --out "$scenes.tmp/synth4k" --quiet >&2
  printf '| split | sets |\n|---|---|\n| scenes4k | synth4k |\n' > "$scenes.tmp/SPLITS.md"
  mv "$scenes.tmp" "$scenes"
fi
root_of() { if [ "$1" = scenes4k ]; then echo "$scenes"; else echo "$data"; fi; }
# DATA/SET folders of a split, from SPLITS.md's table row.
sets_of() { awk -F'|' -v s="$1" '$2 ~ "^ *"s" *$" {gsub(/ /, "", $3); print $3}' "$(root_of "$1")/SPLITS.md" | tr ',' ' '; }

deeplab=runs/pretrained/deeplabv3_mnv2_pascal.pt
timed() {  # timed FILE COUNT cmd...: runs cmd, appends "seconds/COUNT" to FILE
  local file=$1 n=$2; shift 2
  local t0; t0=$(date +%s.%N)
  "$@" > /dev/null
  python3 -c "import sys; print((float(sys.argv[2]) - float(sys.argv[1])) / int(sys.argv[3]))" "$t0" "$(date +%s.%N)" "$n" >> "$file"
}

for split in $splits; do
  root=$(root_of "$split")
  for source in $sources; do
    d="$out/$split-$source"
    if [ ! -d "$d" ]; then
      if [ "$source" = deeplab ]; then
        [ -f "$deeplab" ] || bash scripts/import_pretrained.sh "$shared" "$airm" >&2
        for set in $(sets_of "$split"); do
          mkdir -p "$d.tmp/$set"
          ln -s "$(realpath "$root/$set/images")" "$d.tmp/$set/images"
          ln -s "$(realpath "$root/$set/masks")" "$d.tmp/$set/masks"
          "$airm" segment --segmenter "$deeplab" --images "$root/$set/images" -o "$d.tmp/$set/coarse" --quiet > /dev/null
        done
        mv "$d.tmp" "$d"
      else
        "$airm" degrade --data "$root" --split "$split" --mode "$source" --seed 0 --out "$d" >&2
      fi
    fi
    "$airm" eval --data "$d" --coarse --json "$d-coarse.json" --csv "$d-coarse.csv" --quiet > /dev/null
    for method in $methods; do
      # REUSE=1: keep a peer's scores from an earlier run on the same masks (they are deterministic).
      [ "${REUSE:-0}" = 1 ] && [ "$method" != airm ] && [ -f "$d-$method.json" ] && continue
      rm -f "$d-$method.seconds"
      for set in $(sets_of "$split"); do
        n=$(ls "$d/$set/images" | wc -l)
        if [ "$method" = airm ]; then
          timed "$d-$method.seconds" "$n" "$airm" refine --model "$model" --images "$d/$set/images" \
            --coarse "$d/$set/coarse" -o "$d-$method/$set" --quiet ${EXTRA:-}
        else
          timed "$d-$method.seconds" "$n" "$airm" baseline --method "$method" --images "$d/$set/images" \
            --coarse "$d/$set/coarse" -o "$d-$method/$set" --quiet
        fi
      done
      "$airm" eval --data "$d" --pred "$d-$method" --json "$d-$method.json" --csv "$d-$method.csv" --quiet > /dev/null
    done
  done
done
python3 - "$out" "$splits" "$sources" "coarse $methods" <<'PY'
import json, sys
out, splits, sources, methods = sys.argv[1], sys.argv[2].split(), sys.argv[3].split(), sys.argv[4].split()
names = {"perturb": "perturb (seed 0)", "lowres": "low-res x8", "deeplab": "DeepLabV3 zero-shot"}
labels = {"coarse": "coarse input", "guided": "guided filter", "grabcut": "GrabCut", "airm": "airm refine"}
print("| split | coarse source | set | images | " + " | ".join(f"{labels[m]} IoU / mBA" for m in methods) + " |")
print("|---|---|---|---|" + "---|" * len(methods))
for split in splits:
    for source in sources:
        base = f"{out}/{split}-{source}"
        rows = {m: {s["dataset"]: s for s in json.load(open(f"{base}-{m}.json"))["summaries"]} for m in methods}
        for name, s in rows["coarse"].items():
            cells = []
            for m in methods:
                r = rows[m][name]
                cells.append(f"{r['iou']:.2f} / {r['mba']:.2f}")
            print(f"| {split} | {names[source]} | {name} | {s['images']} | " + " | ".join(cells) + " |")
PY
echo "s/img (wall time of each set's batch / images, mean over the sets):" >&2
for f in "$out"/*.seconds; do
  [ -e "$f" ] || continue  # no method ran (METHODS=" " and no MODEL)
  printf '  %s: %s\n' "$(basename "$f" .seconds)" "$(python3 -c "import sys; v=[float(l) for l in open(sys.argv[1])]; print(f'{sum(v)/len(v):.3f}')" "$f")" >&2
done
