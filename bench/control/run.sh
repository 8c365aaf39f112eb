#!/usr/bin/env bash
# Control-plane benchmark: builds scion-coordinator and scion-loadgen (Release), runs the load
# generator against a fresh data dir, and prints a Markdown table with the machine and date.
# Usage: bench/control/run.sh [--jobs=100000] [--workers=32] [--slots=8] ...
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${SCION_BENCH_BUILD_DIR:-build-bench}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DSCION_TESTS=OFF -DSCION_CUDA=OFF >/dev/null
cmake --build "$build" -j"${SCION_JOBS:-2}" --target scion-coordinator scion-loadgen >/dev/null
data=$(mktemp -d "${TMPDIR:-/tmp}/scion-bench-XXXXXX")
trap 'rm -rf "$data"' EXIT
echo "command: bench/control/run.sh $*"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(findmnt -no FSTYPE -T "$data" 2>/dev/null || echo '?') data dir"
echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
"$build/bench/control/scion-loadgen" --coordinator="$build/coordinator/scion-coordinator" --data-dir="$data" "$@"
