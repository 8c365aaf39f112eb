#!/usr/bin/env bash
# A/B timing of Scion's kernels: this tree against another revision, built side by side and timed
# in interleaved passes within one call on the GPU machine (so both see the same clocks and heat).
#
#   scripts/gpu_ab.sh prepare REV            # here: REV's tree into .gpu-ab/base (carry .gpu-ab)
#   scripts/gpu_ab.sh run FILTER [PASSES]    # there: build both, PASSES (default 3) passes of
#                                            # scion-kernel-bench --filter FILTER, this tree first
#
# Prints one line per pass and tree: each workload's op, key and ms. The GPU machine has no git,
# so the base tree travels as files: run `prepare` here, then `run` there with .gpu-ab carried.
set -euo pipefail
cd "$(dirname "$0")/.."
base=.gpu-ab/base

case "${1:-}" in
  prepare)
    rev=${2:?usage: scripts/gpu_ab.sh prepare REV}
    rm -rf "$base" && mkdir -p "$base"
    git archive "$rev" | tar -x -C "$base"
    git rev-parse --short "$rev" >"$base/.rev"
    echo "base $(git rev-parse --short "$rev") in $base"
    ;;
  run)
    filter=${2:?usage: scripts/gpu_ab.sh run FILTER [PASSES]}
    passes=${3:-3}
    [[ -d $base ]] || { echo "no $base: run 'scripts/gpu_ab.sh prepare REV' here and carry .gpu-ab" >&2; exit 1; }
    cfg=(-DCMAKE_BUILD_TYPE=Release -DSCION_CONTROL_PLANE=OFF -DSCION_TESTS=OFF -DSCION_CUDA=ON -DSCION_CUDA_ARCHS=90a)
    jobs=$(( $(nproc) / 2 > 0 ? $(nproc) / 2 : 1 ))
    build() {  # $1: source dir, $2: build dir
      cmake -S "$1" -B "$2" "${cfg[@]}" >/dev/null && cmake --build "$2" -j"$jobs" --target scion-kernel-bench >/dev/null
    }
    build . build-gpu & a=$!
    build "$base" "$base/build-gpu" & b=$!
    wait $a || { echo "build of this tree failed" >&2; exit 1; }
    wait $b || { echo "build of the base tree failed" >&2; exit 1; }
    times() {  # op,key,ms of each workload on one line
      "$1/bench/kernels/scion-kernel-bench" --filter "$filter" 2>/dev/null | grep '^scion,' | cut -d, -f2,4,5 | tr '\n' ' '
    }
    for ((i = 1; i <= passes; ++i)); do
      echo "this $i: $(times build-gpu)"
      echo "base $i ($(cat "$base/.rev")): $(times "$base/build-gpu")"
    done
    ;;
  *)
    sed -n '2,10p' "$0"
    exit 2
    ;;
esac
