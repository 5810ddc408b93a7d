#!/usr/bin/env bash
# End-to-end checks of the airm command line: exit codes, messages, outputs.
set -uo pipefail
airm=${AIRM_BIN:?set AIRM_BIN to the airm binary}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
passes=0

check() {  # check NAME EXPECTED_RC PATTERN -- command...
  local name=$1 want_rc=$2 pattern=$3
  shift 4
  local out rc
  out=$("$@" 2>&1)
  rc=$?
  if [ "$rc" -ne "$want_rc" ] || ! grep -qE -- "$pattern" <<<"$out"; then
    echo "FAIL $name: rc=$rc (want $want_rc), pattern '$pattern' in:"
    echo "$out" | head -20
    failures=$((failures + 1))
  else
    passes=$((passes + 1))
  fi
}

check help 0 "Subcommands" -- "$airm" --help
check no-subcommand 2 "^error: " -- "$airm"
check unknown-option 2 "^error: .*--bogus" -- "$airm" eval --data "$work" --coarse --bogus
check eval-needs-source 2 "^error: expected exactly one of --pred DIR and --coarse" -- "$airm" eval --data "$work"
check eval-both-sources 2 "^error: " -- "$airm" eval --data "$work" --coarse --pred "$work"
check eval-missing-data 1 "^error: .*/nope: does not exist" -- "$airm" eval --data "$work/nope" --coarse
check synth-bad-size 2 "^error: expected a size WIDTHxHEIGHT" -- "$airm" synth --size 12by5 --out "$work/s"
check synth-too-big 1 "^error: " -- "$airm" synth --size 9000x9000 --out "$work/big"
check degrade-bad-mode 2 "^error: " -- "$airm" degrade --data "$work" --mode blur --out "$work/d"

# Generated scenes -> degraded coarse masks -> eval, with every output.
check synth 0 "wrote 3 scene" -- "$airm" synth --size 211x157 --count 3 --seed 7 --out "$work/scenes" --quiet
check synth-main-object 0 "wrote 1 scene" -- "$airm" synth --size 211x157 --count 1 --seed 7 --main-object \
  --out "$work/main-object" --quiet
if cmp -s "$work/main-object/masks/synth_s7_0000.png" "$work/scenes/masks/synth_s7_0000.png"; then
  echo "FAIL synth-main-object: the same mask as without --main-object"; failures=$((failures + 1))
else
  passes=$((passes + 1))
fi
check degrade-1thread 0 "wrote 3 coarse" -- "$airm" degrade --data "$work/scenes" --mode perturb --seed 1 --out "$work/d1" --threads 1 --quiet
check degrade-2threads 0 "wrote 3 coarse" -- "$airm" degrade --data "$work/scenes" --mode perturb --seed 1 --out "$work/d2" --threads 2 --quiet
if diff -r "$work/d1/scenes/coarse" "$work/d2/scenes/coarse" >/dev/null; then passes=$((passes + 1)); else
  echo "FAIL degrade-deterministic: coarse masks differ between 1 and 2 threads"; failures=$((failures + 1)); fi
check eval-coarse 0 "^all +3 " -- "$airm" eval --data "$work/d1" --coarse --quiet \
  --csv "$work/e.csv" --json "$work/e.json" --report "$work/e.html"
for f in e.csv e.json e.html; do
  if [ -s "$work/$f" ]; then passes=$((passes + 1)); else echo "FAIL output $f missing"; failures=$((failures + 1)); fi
done
if ls -a "$work" | grep -q '\.tmp-'; then echo "FAIL temporary files left behind"; failures=$((failures + 1)); else passes=$((passes + 1)); fi

# A prediction folder with one file missing: the table still prints, rc 1.
mkdir -p "$work/pred"
cp "$work/d1/scenes/coarse/"synth_s7_000{0,1}.png "$work/pred/"
check eval-missing-pred 1 "error: synth_s7_0002: has no prediction" -- "$airm" eval --data "$work/scenes" --pred "$work/pred" --quiet

# A broken prediction is reported by name.
printf 'not a png' > "$work/pred/synth_s7_0002.png"
check eval-broken-pred 1 "error: .*synth_s7_0002.png: " -- "$airm" eval --data "$work/scenes" --pred "$work/pred" --quiet

# airm baseline: the classical peers on the generated scenes' coarse masks.
check baseline-guided 0 "guided: refined 3, failed 0 of 3 image\(s\)" -- "$airm" baseline --method guided \
  --images "$work/d1/scenes/images" --coarse "$work/d1/scenes/coarse" -o "$work/guided" --quiet
check baseline-grabcut-one 0 "wrote .*one.png: grabcut in" -- "$airm" baseline --method grabcut \
  "$work/d1/scenes/images/synth_s7_0000.jpg" "$work/d1/scenes/coarse/synth_s7_0000.png" -o "$work/one.png"
check baseline-eval 0 "^all +3 " -- "$airm" eval --data "$work/scenes" --pred "$work/guided" --quiet
check baseline-bad-method 2 "^error: .*--method" -- "$airm" baseline --method blur "$work/a.png" "$work/b.png" -o "$work/c.png"
check baseline-needs-coarse 2 "^error: expected IMAGE COARSE -o OUT.png" -- "$airm" baseline --method guided \
  "$work/d1/scenes/images/synth_s7_0000.jpg" -o "$work/c.png"
mkdir -p "$work/partial"
cp "$work/d1/scenes/coarse/"synth_s7_000{0,1}.png "$work/partial/"
check baseline-missing-coarse 1 "synth_s7_0002.jpg: no coarse mask synth_s7_0002.png" -- "$airm" baseline --method guided \
  --images "$work/d1/scenes/images" --coarse "$work/partial" -o "$work/g2" --quiet
if [ -e "$work/g2/synth_s7_0002.png" ] || [ ! -e "$work/g2/synth_s7_0001.png" ]; then
  echo "FAIL baseline-missing-coarse: wrong outputs"; failures=$((failures + 1)); else passes=$((passes + 1)); fi
printf 'not a png' > "$work/partial/synth_s7_0001.png"
check baseline-broken-coarse 1 "error: .*synth_s7_0001.png: " -- "$airm" baseline --method grabcut \
  "$work/d1/scenes/images/synth_s7_0001.jpg" "$work/partial/synth_s7_0001.png" -o "$work/broken.png"
if [ -e "$work/broken.png" ]; then echo "FAIL baseline: output written on error"; failures=$((failures + 1)); else
  passes=$((passes + 1)); fi

# airm model --export: a shipped model written again in fp16 storage describes the same network.
model="$(dirname "$0")/../../models/airm.pt"
if [ -f "$model" ]; then
  check model-export 0 "wrote .*fp16 storage" -- "$airm" model --weights "$model" --export "$work/half.pt" --half
  check model-export-needs-weights 2 "^error: --export needs --weights" -- "$airm" model --config x.json --export "$work/y.pt"
  if [ "$("$airm" model --weights "$model" | head -1)" = "$("$airm" model --weights "$work/half.pt" | head -1)" ]; then
    passes=$((passes + 1)); else echo "FAIL model-export: another network"; failures=$((failures + 1)); fi
  # airm model --average: checkpoint averaging (the mean of a file with itself describes the same network).
  check model-average 0 "wrote .*the mean of 2 weights files" -- "$airm" model --average "$model" "$work/half.pt" \
    --coefficients 0.3,0.7 --export "$work/mean.pt"
  check model-average-needs-export 2 "^error: --average needs --export" -- "$airm" model --average "$model" "$model"
  check model-average-coefficients 2 "^error: expected one --coefficients value per --average file \(2\), got 3" -- \
    "$airm" model --average "$model" "$model" --coefficients 0.2,0.3,0.5 --export "$work/bad.pt"
  check model-average-sum 1 "^error: expected coefficients summing to 1" -- \
    "$airm" model --average "$model" "$model" --coefficients 0.2,0.3 --export "$work/bad.pt"
  if [ -e "$work/bad.pt" ]; then echo "FAIL model-average: output written on error"; failures=$((failures + 1)); else
    passes=$((passes + 1)); fi
  if [ "$("$airm" model --weights "$model" | head -1)" = "$("$airm" model --weights "$work/mean.pt" | head -1)" ]; then
    passes=$((passes + 1)); else echo "FAIL model-average: another network"; failures=$((failures + 1)); fi
fi

echo "$passes passed, $failures failed"
[ "$failures" -eq 0 ]
