#!/usr/bin/env bash
# Runs deploy/slurm/scion-workers.sbatch without a SLURM cluster: a stand-in `srun` runs the task
# on this machine as one node would, and a stand-in worker records how it was started. Checks:
# one worker per allocated GPU, each with only its GPU visible, distinct ids and metrics ports,
# the coordinator address and SCION_WORKER_ARGS passed through; SIGTERM to the batch script stops every worker; no GPUs
# allocated is an error.
# Usage: slurm_check.sh REPO
set -euo pipefail
script=$1/deploy/slurm/scion-workers.sbatch
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/bin"
cat >"$tmp/bin/srun" <<'SH'
#!/usr/bin/env bash
# Stand-in for srun on one node: drop srun's own options, run the command.
while [ $# -gt 0 ] && [ "${1#--}" != "$1" ]; do shift; done
exec "$@"
SH
cat >"$tmp/bin/fake-worker" <<'SH'
#!/usr/bin/env bash
# Records its GPU and arguments, then runs until terminated.
echo "CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES $*" >>"$FAKE_LOG"
trap 'echo "stopped $CUDA_VISIBLE_DEVICES" >>"$FAKE_LOG"; exit 0' TERM
while :; do sleep 0.05; done
SH
chmod +x "$tmp/bin/srun" "$tmp/bin/fake-worker"

fail() { echo "FAILED: $*" >&2; cat "$tmp/log" >&2 2>/dev/null || true; exit 1; }

export PATH="$tmp/bin:$PATH" FAKE_LOG="$tmp/log" SLURM_JOB_ID=4242
SCION_WORKER_BIN=fake-worker SCION_SCRATCH="$tmp/scratch" CUDA_VISIBLE_DEVICES=2,5 \
  SCION_WORKER_ARGS="--drain-timeout 30  --job-binary /opt/scion-job" bash "$script" tcp://coord.test:5555 &
batch=$!
for _ in $(seq 100); do
  [ -f "$tmp/log" ] && [ "$(wc -l <"$tmp/log")" -ge 2 ] && break
  sleep 0.05
done
host=$(hostname)
grep -qx "CUDA_VISIBLE_DEVICES=2 --id slurm-4242-$host-gpu0 --coordinator tcp://coord.test:5555 --metrics-addr 0.0.0.0:9470 --data $tmp/scratch/$host-gpu0 --drain-timeout 30 --job-binary /opt/scion-job" "$tmp/log" \
  || fail "worker for GPU 2 not started as expected"
grep -qx "CUDA_VISIBLE_DEVICES=5 --id slurm-4242-$host-gpu1 --coordinator tcp://coord.test:5555 --metrics-addr 0.0.0.0:9471 --data $tmp/scratch/$host-gpu1 --drain-timeout 30 --job-binary /opt/scion-job" "$tmp/log" \
  || fail "worker for GPU 5 not started as expected"
[ "$(grep -c '^CUDA' "$tmp/log")" = 2 ] || fail "expected exactly 2 workers"

kill -TERM "$batch"
wait "$batch" || true
for _ in $(seq 100); do
  [ "$(grep -c '^stopped' "$tmp/log")" = 2 ] && break
  sleep 0.05
done
[ "$(grep -c '^stopped' "$tmp/log")" = 2 ] || fail "SIGTERM did not stop both workers"

if SCION_WORKER_BIN=fake-worker SCION_SCRATCH="$tmp/scratch" CUDA_VISIBLE_DEVICES="" \
   bash "$script" tcp://coord.test:5555 2>"$tmp/err"; then
  fail "no GPUs allocated should fail"
fi
grep -q "no GPUs allocated" "$tmp/err" || fail "missing the no-GPU message"
if bash "$script" 2>/dev/null </dev/null; then fail "a missing coordinator address should fail"; fi
echo "ok: one worker per allocated GPU, stopped by SIGTERM"
