#!/usr/bin/env bash
# Installs what is missing, builds everything and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh build
ctest --test-dir build --output-on-failure -j "$(nproc)" -LE long   # `ctest -L long`: the long soak
# The fuzz targets' smoke: each over its seed corpus and regression inputs plus 20 s of new inputs
# (clang + libFuzzer, installed when missing; ASan + UBSan; build-fuzz/). Any finding fails.
bash scripts/fuzz.sh 20
