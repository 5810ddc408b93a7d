#!/usr/bin/env bash
# The segmenter ablation of docs/RESULTS.md (the SRM/CRM paper's modules from the pretrained start, one
# budget per row): configs/train/ablation_segmenter_mnv2.json (the shipped segmenter's recipe and data,
# out/segmix, at a CPU budget: 300 iterations of batch 4 on 257-px crops) with each decoder variant of
# configs/segmenter/ — plain (neither module), srm, crm (the Contextual Refinement Module only), full (both:
# segmenter_mnv2.json) — and two seeds, into runs/seg-ablation/<row>-s<seed>. Re-running resumes an
# unfinished run and skips finished ones.
#
#   bash scripts/train_segmenter_ablation.sh [SHARED] [THREADS] [ROW-SEED ...]
#   (defaults: ../shared 1, every row and seed; e.g. plain-s0 full-s1; a second instance beside the first
#   takes the rows the first has not started)
#   the table: validation of each run's last step is in runs/seg-ablation/<row>-s<seed>/val.csv
set -euo pipefail
cd "$(dirname "$0")/.."
shared=${1:-../shared}
threads=${2:-1}
shift $(( $# >= 2 ? 2 : $# ))
runs=("$@")
[ ${#runs[@]} -gt 0 ] || runs=(plain-s0 srm-s0 crm-s0 full-s0 plain-s1 srm-s1 crm-s1 full-s1)
airm=${AIRM:-build/bin/airm}
[ -x "$airm" ] || AIRM_TARGETS=airm_cli bash scripts/setup.sh build >&2
bash scripts/import_pretrained.sh "$shared" "$airm" >&2
bash scripts/trainmix.sh out/segmix "$shared/data" segmenter >&2
mkdir -p runs/seg-ablation
for run in "${runs[@]}"; do
  row=${run%-s*}
  seed=${run##*-s}
  case "$row" in
    plain|srm|crm) model=configs/segmenter/segmenter_mnv2_$row.json ;;
    full) model=configs/segmenter/segmenter_mnv2.json ;;
    *) echo "error: expected a row plain|srm|crm|full, got $row" >&2; exit 2 ;;
  esac
  out=runs/seg-ablation/$run
  if grep -q "finished at" "$out.log" 2> /dev/null; then
    echo "$run: finished" >&2
    continue
  fi
  # Two instances may share the rows (one per core): a run another instance holds is left to it.
  if ! mkdir "$out.lock" 2> /dev/null; then
    echo "$run: running elsewhere (or a stale $out.lock from a killed instance: remove it)" >&2
    continue
  fi
  trap 'rmdir "$out.lock" 2> /dev/null || true' EXIT
  if [ -f "$out/checkpoint/state.json" ]; then
    "$airm" train --out "$out" --resume --threads "$threads" --workers 1 >> "$out.log" 2>&1
  else
    # The row's train config: the ablation recipe with this row's model and seed (paths made absolute).
    config=runs/seg-ablation/$run.json
    python3 - configs/train/ablation_segmenter_mnv2.json "$model" "$seed" "$config" <<'PY'
import json, os, sys
base, model, seed, out = sys.argv[1:]
c = json.load(open(base))
here = os.path.dirname(os.path.abspath(base))
c["model"] = os.path.abspath(model)
c["encoder_weights"] = os.path.normpath(os.path.join(here, c["encoder_weights"]))
c["seed"] = int(seed)
json.dump(c, open(out, "w"), indent=2)
PY
    echo "$run: training ($model, seed $seed)" >&2
    "$airm" train --config "$config" --data out/segmix --split train --val val --out "$out" \
      --threads "$threads" --workers 1 >> "$out.log" 2>&1
  fi
  rmdir "$out.lock"
done
