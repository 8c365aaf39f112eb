#!/usr/bin/env bash
# Runs every Scion test: installs dependencies, builds (CUDA when nvcc is present; GPU tests skip
# without a device), runs the whole CTest suite.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
build=${SCION_BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSCION_TESTS=ON >/dev/null
cmake --build "$build" -j"${SCION_JOBS:-2}"
ctest --test-dir "$build" --output-on-failure -j"${SCION_JOBS:-2}" "$@"
