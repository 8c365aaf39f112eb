#!/usr/bin/env bash
# On the GPU machine: build the kernels (no control plane), run the consistency check, run
# compute-sanitizer memcheck (out-of-range and misaligned accesses) and initcheck (reads of memory
# nothing wrote) on the whole check, time Scion's kernels and the PyTorch peers on the
# same shapes, and print one table (op, shape, scion ms, peer, peer ms, ratio, TFLOP/s, fraction of
# the measured bf16 GEMM ceiling).
# Stage "nn": the CUDA model check (scion-nn-check on a fresh transformers golden fixture) and the
# GPT-2 small training benchmark (scion-nn-bench vs bench/nn/peers.py: PyTorch eager and
# torch.compile), printed as a second table.
#   scripts/gpu_check.sh [out_dir]
# Stage "nncheck": only the CUDA model check of stage "nn" (no training benchmark).
# Environment: STAGES (default "build check memcheck initcheck bench"; add "nn" or "nncheck"), BENCH_FILTER (words passed to
# both scion-kernel-bench and peers.py), NN_FILTER (scion-nn-bench and bench/nn/peers.py workloads),
# MEMCHECK_FILTER (check cases run under memcheck; default: every case), CHECK_FILTER (words passed to scion-kernel-check's
# --filter; default: every case), JOBS.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
out=${1:-${OUT:-/tmp/scion-gpu-check}}
mkdir -p "$out"
stages=${STAGES:-build check memcheck initcheck bench}
build=${SCION_BUILD_DIR:-build-gpu}
status=0
summary=()
has() { [[ " $stages " == *" $1 "* ]]; }

if has build; then
  targets=()
  { has check || has memcheck || has initcheck || has bench; } && targets+=(scion-kernel-check scion-kernel-bench)
  has nn && targets+=(scion-nn-check scion-nn-bench)
  has nncheck && targets+=(scion-nn-check)
  ((${#targets[@]})) || targets=(scion-kernel-check scion-kernel-bench)  # STAGES="build" alone: the kernel binaries
  if ! cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DSCION_CONTROL_PLANE=OFF -DSCION_TESTS=OFF \
         -DSCION_CUDA=ON -DSCION_CUDA_ARCHS=90a >"$out/build.log" 2>&1 ||
     ! cmake --build "$build" -j"${JOBS:-16}" --target "${targets[@]}" >>"$out/build.log" 2>&1; then
    tail -30 "$out/build.log"
    echo "build failed"
    exit 1
  fi
fi
check=$build/tests/kernels/scion-kernel-check
bench=$build/bench/kernels/scion-kernel-bench

if has check; then
  "$check" ${CHECK_FILTER:+--filter "$CHECK_FILTER"} >"$out/check.log" 2>&1
  rc=$?
  grep -E 'FAIL' "$out/check.log" | head -20
  summary+=("check: $(tail -1 "$out/check.log") (exit $rc)")
  [[ $rc -ne 0 ]] && status=1
fi
if has memcheck; then
  # The whole check runs under memcheck in under a minute on an H100. API errors are not reported:
  # the check provokes some on purpose (a validating launch refused under stream capture) and
  # fails any case whose call errs unexpectedly.
  /usr/local/cuda/bin/compute-sanitizer --tool memcheck --report-api-errors no --error-exitcode 3 "$check" \
    ${MEMCHECK_FILTER:+--filter "$MEMCHECK_FILTER"} >"$out/memcheck.log" 2>&1
  rc=$?
  summary+=("memcheck: $(grep -E 'ERROR SUMMARY' "$out/memcheck.log" | tail -1) $(grep -E 'passed,' "$out/memcheck.log" | tail -1) (exit $rc)")
  [[ $rc -ne 0 ]] && status=1
fi
if has initcheck; then
  # cuBLAS's split-K reduce (the LowRA GEMM's) reads parts of its own workspace that it never
  # wrote; those reports are counted apart and do not fail the stage.
  /usr/local/cuda/bin/compute-sanitizer --tool initcheck --print-limit 1000000 "$check" >"$out/initcheck.log" 2>&1
  rc=$?
  ours=$(grep -E '^=========     at ' "$out/initcheck.log" | grep -vc 'cublasLt::')
  theirs=$(grep -E '^=========     at ' "$out/initcheck.log" | grep -c 'cublasLt::')
  summary+=("initcheck: $ours reads of unwritten memory in Scion's kernels, $theirs in cuBLAS; $(grep -E 'passed,' "$out/initcheck.log" | tail -1) (exit $rc)")
  [[ $rc -ne 0 || $ours -ne 0 ]] && status=1
fi
if has bench; then
  "$bench" ${BENCH_FILTER:+--filter "$BENCH_FILTER"} >"$out/scion.csv" 2>"$out/bench.err" || status=1
  : >"$out/peers.csv"; : >"$out/peers.err"
  for peers in bench/kernels/*peers.py; do  # peers.py (softmax family, ceilings), linear_peers.py, ...
    PYTHONUNBUFFERED=1 python3 "$peers" ${BENCH_FILTER:+--filter "$BENCH_FILTER"} \
      >>"$out/peers.csv" 2>>"$out/peers.err" || status=1
  done
  python3 bench/kernels/report.py "$out/scion.csv" "$out/peers.csv" >"$out/table.md"
  cat "$out/bench.err"; grep -v Warning "$out/peers.err" | tail -5
fi
if has nn || has nncheck; then
  golden=${TMPDIR:-/tmp}/scion-golden-d16  # head width 16: what the CUDA attention kernels take
  python3 scripts/hf_golden.py --out "$golden" --n-head 2 >"$out/nn_golden.log" 2>&1 || { cat "$out/nn_golden.log"; status=1; }
  "$build/tests/nn/cuda/scion-nn-check" "$golden" >"$out/nn_check.log" 2>&1
  rc=$?
  cat "$out/nn_check.log"
  summary+=("nn check: $(tail -1 "$out/nn_check.log") (exit $rc)")
  [[ $rc -ne 0 ]] && status=1
fi
if has nn; then
  "$build/bench/nn/scion-nn-bench" ${NN_FILTER:+--filter "$NN_FILTER"} >"$out/nn_scion.csv" 2>"$out/nn_bench.err" || status=1
  PYTHONUNBUFFERED=1 python3 bench/nn/peers.py ${NN_FILTER:+--filter "$NN_FILTER"} >"$out/nn_peers.csv" \
    2>"$out/nn_peers.err" || status=1
  python3 bench/nn/report.py "$out/nn_scion.csv" "$out/nn_peers.csv" >"$out/nn_table.md"
  cat "$out/nn_bench.err"; grep -v Warning "$out/nn_peers.err" | tail -5
fi
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv,noheader >"$out/gpu.txt" 2>&1
for line in "${summary[@]}"; do echo "$line"; done
cat "$out/gpu.txt"
[[ -f "$out/table.md" ]] && cat "$out/table.md"
[[ -f "$out/nn_table.md" ]] && cat "$out/nn_table.md"
exit $status
