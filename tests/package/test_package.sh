#!/usr/bin/env bash
# The installed package, used from outside the source tree:
#   1. `cmake --install BUILD --prefix P` (library, headers, CLI, models, configs, CMake package, Python module);
#   2. the consumer project configured with find_package(airm) against P, built and run;
#   3. P/bin/airm refines with its default model from P/share/airm/models (no $AIRM_MODEL, run elsewhere);
#   4. the Python module imports from P with only PYTHONPATH set, from a folder outside the tree.
#   test_package.sh BUILD_DIR SOURCE_DIR [with-python]
set -euo pipefail
build=$(realpath "$1")
source=$(realpath "$2")
python=${3:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
cmake --install "$build" --prefix "$prefix" > "$tmp/install.log"
for f in lib/cmake/airm/airmConfig.cmake lib/cmake/airm/airmConfigVersion.cmake include/airm/refiner.hpp \
         bin/airm share/airm/models/airm.pt share/airm/models/segmenter.pt share/airm/configs/airm_mnv2_residual.json; do
  [ -e "$prefix/$f" ] || { echo "FAIL: $f not installed" >&2; exit 1; }
done

cmake -S "$source/tests/package/consumer" -B "$tmp/consumer" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$prefix" > "$tmp/configure.log" || { cat "$tmp/configure.log" >&2; exit 1; }
cmake --build "$tmp/consumer" > "$tmp/build.log" || { cat "$tmp/build.log" >&2; exit 1; }
line=$("$tmp/consumer/consumer")
echo "consumer: $line"
[[ "$line" =~ ^coarse\ IoU\ [0-9.]+\ refined\ IoU\ [0-9.]+$ ]] || { echo "FAIL: consumer printed '$line'" >&2; exit 1; }

cd "$tmp"
env -u AIRM_MODEL -u AIRM_SEGMENTER "$prefix/bin/airm" synth --size 320x240 --count 1 --seed 3 --coarse perturb \
  --out "$tmp/scene" --quiet
image=$(ls "$tmp/scene/images"/*)
coarse=$(ls "$tmp/scene/coarse"/*)
env -u AIRM_MODEL -u AIRM_SEGMENTER "$prefix/bin/airm" refine "$image" "$coarse" -o "$tmp/out.png" --quiet
[ -s "$tmp/out.png" ] || { echo "FAIL: the installed CLI wrote no mask" >&2; exit 1; }
echo "installed CLI: refined with $prefix/share/airm/models/airm.pt"

if [ "$python" = with-python ]; then
  env -u AIRM_MODEL -u AIRM_SEGMENTER PYTHONPATH="$prefix/lib/python3/dist-packages" /usr/bin/python3 -c "
import airm, cv2, sys
assert airm.__file__.startswith('$prefix'), airm.__file__
assert airm.default_weights('airm.pt', 'AIRM_MODEL').startswith('$prefix/share/airm/models'), airm.default_weights('airm.pt', 'AIRM_MODEL')
image = cv2.imread('$image'); coarse = cv2.imread('$coarse', cv2.IMREAD_GRAYSCALE)
print('installed python:', airm.Refiner().refine(image, coarse).shape, 'from', airm.default_weights('airm.pt', 'AIRM_MODEL'))
"
fi
echo "package: OK"
