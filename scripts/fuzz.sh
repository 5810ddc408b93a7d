#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan; build-fuzz/), makes their seed corpora and runs each
# over its corpus, the committed regression inputs (fuzz/regressions/TARGET/) and SECONDS of new inputs.
# Any crash, sanitizer report, hang (> 10 s) or allocation past 2 GB fails it (libFuzzer's artifact is
# kept in build-fuzz/findings/). Installs clang when missing.
#
#   bash scripts/fuzz.sh [SECONDS] [TARGET...]     (default: 20 s each, every target; the test command's smoke)
#   bash scripts/fuzz.sh 1800 fuzz_tflite          (a long run of one target; its corpus grows in build-fuzz/corpus)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(fuzz_image fuzz_label_map fuzz_splits fuzz_config fuzz_weights fuzz_tflite
                                    fuzz_refine_options)
build=${AIRM_FUZZ_BUILD:-build-fuzz}

missing=()
for p in $(grep -vE '^\s*(#|$)' scripts/apt-packages-fuzz.txt); do
  dpkg-query -W -f='${Status}' "$p" 2> /dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "fuzz: installing ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null
fi

export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# LibTorch and OpenCV keep thread pools and caches for the whole process: not leaks of one input.
export ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1
[ -x build/bin/airm ] || AIRM_TARGETS=airm_cli bash scripts/setup.sh build  # makes the seed corpora
CC=clang CXX=clang++ cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DAIRM_FUZZ=ON \
  -DAIRM_BUILD_TESTS=OFF -DAIRM_BUILD_PYTHON=OFF > /dev/null
cmake --build "$build" -j "$(nproc)" $(printf -- '--target %s ' "${targets[@]}" fuzz_make_weights_seeds)
if [ ! -d "$build/seeds" ]; then
  rm -rf "$build/seeds.tmp"
  bash fuzz/make_corpus.sh build/bin/airm "$build/fuzz/fuzz_make_weights_seeds" "$build/seeds.tmp"
  mv "$build/seeds.tmp" "$build/seeds"
fi

mkdir -p "$build/findings"
status=0
for t in "${targets[@]}"; do
  corpus=$build/corpus/$t
  mkdir -p "$corpus"
  dirs=("$corpus" "$build/seeds/$t")
  [ -d "fuzz/regressions/$t" ] && dirs+=("fuzz/regressions/$t")
  log=$build/findings/$t.log
  echo "fuzz: $t for $seconds s over $(find "${dirs[@]}" -type f | wc -l) inputs" >&2
  if "$build/fuzz/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048 \
       -max_len=$((16 << 20)) -print_final_stats=1 -artifact_prefix="$build/findings/$t-" "${dirs[@]}" > "$log" 2>&1; then
    echo "fuzz: $t: $(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}') runs, corpus $(ls "$corpus" | wc -l), no finding" >&2
  else
    echo "fuzz: $t: FINDING (log $log):" >&2
    grep -E "ERROR|SUMMARY|Test unit written" "$log" | head -5 >&2
    status=1
  fi
done
exit $status
