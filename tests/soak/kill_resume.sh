#!/usr/bin/env bash
# Soak: a training run killed with SIGKILL at random moments (KILLS times, 20 by default: during start-up,
# steps and checkpoint writes alike) and resumed each time ends with weights bit-identical to an
# uninterrupted run, logs each step once with the same losses, and leaves no temporary file behind.
#
#   AIRM_BIN=build/bin/airm bash tests/soak/kill_resume.sh [SOURCE_DIR]
#   (KILLS=20 ITERATIONS=150 SEED=1 set the kill count, the run's length and the kill times' seed)
set -euo pipefail
src=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
airm=${AIRM_BIN:?set AIRM_BIN to the airm executable}
kills=${KILLS:-20}
iterations=${ITERATIONS:-150}
RANDOM=${SEED:-1}
work=$(mktemp -d /tmp/airm-kill-resume.XXXXXX)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$airm" synth --size 96x80 --count 6 --seed 100 --out "$work/data/synth_train" --quiet > /dev/null
printf '| split | sets |\n|---|---|\n| train | synth_train |\n' > "$work/data/SPLITS.md"
# One thread: bit-exact reductions; checkpoints every 2 steps (tiny.json), so kills land in their writes too.
fresh=(train --config "$src/configs/train/tiny.json" --data "$work/data" --iterations "$iterations" --no-val
       --threads 1 --workers 1 --quiet)

t0=$(date +%s.%N)
"$airm" "${fresh[@]}" --out "$work/whole" > /dev/null 2>&1 || fail "the uninterrupted run failed"
whole_s=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')

run=$work/killed
start() {  # starts (or resumes) the killed run in the background; its pid in $pid
  if [ -f "$run/run.json" ]; then
    "$airm" train --out "$run" --resume --threads 1 --workers 1 --quiet > /dev/null 2>> "$work/killed.log" &
  else
    "$airm" "${fresh[@]}" --out "$run" > /dev/null 2>> "$work/killed.log" &
  fi
  pid=$!
}
done_kills=0 starts=0 times=""
while [ "$done_kills" -lt "$kills" ]; do
  start
  starts=$((starts + 1))
  # A moment in [0.2, 2.5) s: start-up takes about 1 s, a step and a checkpoint a fraction of that.
  delay=$(awk -v r="$RANDOM" 'BEGIN { printf "%.3f", 0.2 + 2.3 * r / 32768 }')
  sleep "$delay"
  if kill -0 "$pid" 2> /dev/null; then
    kill -KILL "$pid"
    wait "$pid" 2> /dev/null || true
    done_kills=$((done_kills + 1))
    times="$times $delay"
  else
    wait "$pid" || fail "a resumed run failed: $(tail -3 "$work/killed.log")"
    [ -f "$run/last.pt" ] && [ "$(tail -1 "$run/log.csv" | cut -d, -f1)" = "$iterations" ] &&
      fail "the run finished after $done_kills kills: raise ITERATIONS"
  fi
done
# The last resume runs to the end.
"$airm" train --out "$run" --resume --threads 1 --workers 1 --quiet > /dev/null 2>> "$work/killed.log" ||
  fail "the final resume failed: $(tail -3 "$work/killed.log")"

cmp -s "$work/whole/last.pt" "$run/last.pt" || fail "last.pt differs from the uninterrupted run's"
cmp -s "$work/whole/checkpoint/weights.pt" "$run/checkpoint/weights.pt" || fail "the final checkpoint differs"
# Each step logged once, with the same losses, gradient norm and learning rate (columns 1-9; the rest are timings).
diff <(cut -d, -f1-9 "$work/whole/log.csv") <(cut -d, -f1-9 "$run/log.csv") > /dev/null ||
  fail "log.csv differs from the uninterrupted run's in its losses or steps"
leftover=$(cd "$run" && find . -mindepth 1 \( -name '*.tmp*' -o -name '*.old' -o -name '.*' \) | head -3)
[ -z "$leftover" ] || fail "temporary files left in the run: $leftover"
echo "PASS: $done_kills SIGKILLs (after$times s), $starts starts, $iterations steps: weights and log equal to the uninterrupted run's (${whole_s} s)"
