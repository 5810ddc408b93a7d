#!/usr/bin/env bash
# Training throughput of `airm train` (the real loop: loader threads, forward, losses, backward, Adam):
# iterations/s and images/s at a global batch of 8, crop 224, every pixel queried, for the MiT-b0 and
# MiT-b1 AIRM configs and the CRM-style R50+SIRMF config; fp32 vs bf16, 1 vs 2 threads, 1 process vs
# 2 local workers (c10d, batch 4 each). Each cell: the mean rate over iterations WARM+1..ITERS.
#
#   bash bench/bench_train.sh [DATA]     (default ../shared/data; AIRM=path/to/airm, ITERS=8, WARM=2)
set -euo pipefail
cd "$(dirname "$0")/.."
airm=${AIRM:-build/bin/airm}
data=${1:-../shared/data}
iters=${ITERS:-8}
warm=${WARM:-2}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

[ -x "$airm" ] || { echo "error: $airm not built" >&2; exit 1; }
[ -d "$data" ] || { echo "error: no dataset at $data" >&2; exit 1; }

config() {  # config MODEL BATCH -> path of a training config
  local out="$work/$1_b$2.json"
  /usr/bin/python3 - "$1" "$2" "$iters" "$out" "$PWD" <<'PY'
import json, sys
model, batch, iters, out, root = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
c = json.load(open(f"{root}/configs/train/airm_mit_b0.json"))
c["model"] = json.load(open(f"{root}/configs/{model}.json"))
c.update(batch=batch, iterations=iters, checkpoint_every=100000, validate_every=100000, log_every=1)
json.dump(c, open(out, "w"))
PY
  echo "$out"
}

rate() {  # rate RUN_DIR -> "| it/s | images/s" (global batch 8) over the measured iterations
  /usr/bin/python3 - "$1/log.csv" "$warm" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
warm = int(sys.argv[2])
r = (len(rows) - warm) / (float(rows[-1]["elapsed_s"]) - float(rows[warm - 1]["elapsed_s"]))
print(f"| {r:.3f} | {8 * r:.2f}")
PY
}

printf "| model | precision | threads | processes | it/s | images/s | peak RSS (MiB, largest process) |\n"
printf "|---|---|---|---|---|---|---|\n"
for model in airm_mit_b0 airm_mit_b1 crm_r50_sirmf; do
  for precision in fp32 bf16; do
    flag=""; [ "$precision" = bf16 ] && flag="--bf16"
    for threads in 1 2; do
      run="$work/run_${model}_${precision}_${threads}"
      /usr/bin/time -f "%M" -o "$run.rss" "$airm" train --config "$(config "$model" 8)" --data "$data" --no-val \
        --threads "$threads" --workers 2 --quiet $flag --out "$run" > /dev/null 2> "$run.err" || { cat "$run.err" >&2; exit 1; }
      r=$(rate "$run")
      printf "| %s | %s | %d | 1 %s | %d |\n" "$model" "$precision" "$threads" "$r" "$(( $(cat "$run.rss") / 1024 ))"
    done
    run="$work/run_${model}_${precision}_ddp"
    /usr/bin/time -f "%M" -o "$run.rss" "$airm" train --config "$(config "$model" 4)" --data "$data" --no-val \
      --threads 2 --workers 2 --local-workers 2 --quiet $flag --out "$run" > /dev/null 2> "$run.err" || { cat "$run.err" >&2; exit 1; }
    r=$(rate "$run")
    printf "| %s | %s | 1 each | 2 (batch 4 each) %s | %d |\n" "$model" "$precision" "$r" "$(( $(cat "$run.rss") / 1024 ))"
  done
done
