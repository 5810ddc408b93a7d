#!/usr/bin/env bash
# Soak: `airm refine --images --coarse --out` over COUNT generated 2K photos (300 by default) of which one in
# ten is broken in one of seven ways (truncated JPEG, zero bytes, text named .jpg, a coarse mask of another
# aspect, a truncated coarse PNG, no coarse mask, a photo nobody may read), with the output folder made
# read-only half way through. Expected: every good photo before that point refined, every broken one and
# every write refused reported by name with its reason, exit code 1, no partial or temporary file in the
# output; then, the folder writable again, a rerun skips what is done, refines the rest, and reports the
# broken ones again. Runs airm as user nobody when started as root (root ignores file permissions).
#
#   AIRM_BIN=build/bin/airm bash tests/soak/batch_soak.sh [SOURCE_DIR]
#   (COUNT=300 SIZE=2048x1152 MODEL=SOURCE_DIR/models/airm.pt EXTRA="more refine flags")
set -euo pipefail
src=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
airm=$(realpath "${AIRM_BIN:?set AIRM_BIN to the airm executable}")
model=$(realpath "${MODEL:-$src/models/airm.pt}")
count=${COUNT:-300}
size=${SIZE:-2048x1152}
extra=${EXTRA:-}
python=${PYTHON:-/usr/bin/python3}
work=$(mktemp -d /tmp/airm-batch-soak.XXXXXX)
trap 'chmod -R u+rwX "$work" 2> /dev/null; rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
as_user=()
if [ "$(id -u)" = 0 ]; then
  as_user=(setpriv --reuid=65534 --regid=65534 --clear-groups)
  # The checkout may sit where nobody cannot reach (/root): run copies of the program and the model.
  mkdir -p "$work/bin" && cp "$airm" "$work/bin/airm" && cp "$model" "$work/bin/model.pt"
  airm=$work/bin/airm model=$work/bin/model.pt
fi

"$airm" synth --size "$size" --count "$count" --seed 9100 --coarse perturb --out "$work/set" --quiet > /dev/null
images=$work/set/images coarse=$work/set/coarse out=$work/out
names=()
for f in "$images"/*; do names+=("$(basename "${f%.*}")"); done
[ "${#names[@]}" = "$count" ] || fail "synth wrote ${#names[@]} photos, expected $count"

# Break one photo in ten; kinds[NAME] = what was done, reason[NAME] = the words its error must contain.
declare -A kinds reason
kind_names=(truncated empty text mask_aspect mask_truncated mask_missing unreadable)
for i in "${!names[@]}"; do
  [ $((i % 10)) = 3 ] || continue
  n=${names[$i]} k=${kind_names[$(((i / 10) % 7))]}
  img=$images/$n.jpg msk=$coarse/$n.png
  case $k in
    truncated) head -c $(($(stat -c %s "$img") * 2 / 5)) "$img" > "$img.cut" && mv "$img.cut" "$img"; reason[$n]="$n.jpg: truncated";;
    empty) : > "$img"; reason[$n]="$n.jpg: empty file";;
    text) printf 'this is not a photo\n' > "$img"; reason[$n]="$n.jpg: not a readable image";;
    mask_aspect) "$python" -c "import cv2, numpy as np; cv2.imwrite('$msk', np.zeros((200, 64), np.uint8))";
                 reason[$n]="$n.png: expected a mask with the aspect ratio";;
    mask_truncated) head -c 300 "$msk" > "$msk.cut" && mv "$msk.cut" "$msk"; reason[$n]="$n.png: truncated";;
    mask_missing) rm "$msk"; reason[$n]="no coarse mask $n.png";;
    unreadable) chmod 000 "$img"; reason[$n]="$n.jpg: could not be opened for reading (Permission denied)";;
  esac
  kinds[$n]=$k
done
[ ${#as_user[@]} = 0 ] || chown -R 65534:65534 "$work"
mkdir "$out" && [ ${#as_user[@]} = 0 ] || chown 65534:65534 "$out"

run_batch() {  # run_batch TAG: refine the set into $out; stdout/stderr/rc in $work/TAG.{out,err,rc}
  set +e
  # shellcheck disable=SC2086
  "${as_user[@]}" "$airm" refine --images "$images" --coarse "$coarse" --out "$out" --model "$model" --threads 0 --quiet $extra \
    > "$work/$1.out" 2> "$work/$1.err"
  echo $? > "$work/$1.rc"
  set -e
}

# Run 1, the output folder made read-only once half the good photos are written.
half=$(((count - ${#kinds[@]}) / 2))
( while [ "$(find "$out" -maxdepth 1 -name '*.png' | wc -l)" -lt "$half" ]; do sleep 0.1; done; chmod 555 "$out" ) &
watcher=$!
t0=$(date +%s)
run_batch run1
kill "$watcher" 2> /dev/null || true
wait "$watcher" 2> /dev/null || true
run1_s=$(($(date +%s) - t0))
[ "$(cat "$work/run1.rc")" = 1 ] || fail "run 1 exited $(cat "$work/run1.rc"), expected 1: $(tail -3 "$work/run1.err")"

# Every output complete: no temporaries, each PNG decodes at the photo's size.
check_outputs() {
  local hidden; hidden=$(find "$out" -mindepth 1 -name '.*' | head -3)
  [ -z "$hidden" ] || fail "$1: temporary files in the output: $hidden"
  "$python" - "$out" "$size" <<'EOF' || fail "$1: an output is not a whole mask"
import sys, glob, cv2
w, h = map(int, sys.argv[2].split("x"))
for p in glob.glob(sys.argv[1] + "/*"):
    m = cv2.imread(p, cv2.IMREAD_UNCHANGED)
    if m is None or m.shape != (h, w) or not set(m.ravel().tolist()) <= {0, 255}:
        sys.exit(p + ": not a whole binary mask")
EOF
}
check_outputs "run 1"

refused=0 refined1=0
for n in "${names[@]}"; do
  line=$(grep -E "^$n: " "$work/run1.out" || true)
  if [ -n "${kinds[$n]:-}" ]; then
    [ "$line" = "$n: failed" ] || fail "run 1: broken photo $n (${kinds[$n]}) reported '$line'"
    grep -qF -- "${reason[$n]}" "$work/run1.err" || fail "run 1: no error naming ${reason[$n]} (${kinds[$n]})"
    [ ! -e "$out/$n.png" ] || fail "run 1: broken photo $n (${kinds[$n]}) has an output"
  elif [ "$line" = "$n: failed" ]; then
    [ ! -e "$out/$n.png" ] || fail "run 1: $n failed but has an output"
    refused=$((refused + 1))
  else
    [[ "$line" == "$n: refined"* ]] && [ -f "$out/$n.png" ] || fail "run 1: good photo $n reported '$line'"
    refined1=$((refined1 + 1))
  fi
done
[ "$refused" -gt 0 ] || fail "run 1: the read-only folder refused no write"
[ "$refined1" -ge "$half" ] || fail "run 1: only $refined1 photos refined before the folder became read-only"
refused_errors=$(grep -c "could not be written: Permission denied" "$work/run1.err" || true)
[ "$refused_errors" = "$refused" ] ||
  fail "run 1: $refused writes refused but $refused_errors 'could not be written: Permission denied' errors"

# Run 2: writable again; the finished photos are skipped, the refused ones refined, the broken ones fail again.
chmod 755 "$out"
t0=$(date +%s)
run_batch run2
run2_s=$(($(date +%s) - t0))
[ "$(cat "$work/run2.rc")" = 1 ] || fail "run 2 exited $(cat "$work/run2.rc"), expected 1"
check_outputs "run 2"
skipped=0 refined2=0
for n in "${names[@]}"; do
  line=$(grep -E "^$n: " "$work/run2.out" || true)
  if [ -n "${kinds[$n]:-}" ]; then
    [ "$line" = "$n: failed" ] || fail "run 2: broken photo $n reported '$line'"
  elif grep -qE "^$n: refined" "$work/run1.out"; then
    [ "$line" = "$n: skipped (output exists)" ] || fail "run 2: $n, finished in run 1, reported '$line'"
    skipped=$((skipped + 1))
  else
    [[ "$line" == "$n: refined"* ]] && [ -f "$out/$n.png" ] || fail "run 2: $n reported '$line'"
    refined2=$((refined2 + 1))
  fi
done
good=$((count - ${#kinds[@]}))
[ "$(find "$out" -name '*.png' | wc -l)" = "$good" ] || fail "expected $good outputs in the end"
echo "PASS: $count photos of $size, ${#kinds[@]} broken (7 kinds): run 1 refined $refined1, refused $refused writes" \
     "after the folder became read-only, exit 1 ($run1_s s); run 2 skipped $skipped, refined $refined2, exit 1 ($run2_s s)"
