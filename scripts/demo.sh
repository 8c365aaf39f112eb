#!/usr/bin/env bash
# The main job: a local Scion cluster (one coordinator, one worker, data under ./data/demo) runs a
# small learning-rate sweep of `command` jobs that report SCION_METRIC lines, then trains the same
# byte-level GPT with three sequence mixers (softmax, sliding window, Hedgehog linear attention) as
# `train` jobs, shows progress, prints results tables (`scion compare`) and shuts both daemons down
# cleanly. Runs on the CPU when there is no GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

build=${SCION_BUILD_DIR:-build-demo}
data=${SCION_DEMO_DATA:-$root/data/demo}
base_port=${SCION_DEMO_PORT:-15555}   # worker socket; client = +1, metrics = +2 and +3
worker_addr=tcp://127.0.0.1:$base_port
export SCION_ADDR=tcp://127.0.0.1:$((base_port + 1))

log() { printf '\n== %s\n' "$*"; }

log "bootstrap and build ($build, Release)"
./scripts/bootstrap.sh
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DSCION_TESTS=OFF -DSCION_BENCH=OFF >/dev/null
cmake --build "$build" -j"${SCION_JOBS:-2}" --target scion-coordinator scion-worker scion-job scion >/dev/null
bin=$root/$build
scion() { "$bin/cli/scion" "$@"; }

rm -rf "$data"
mkdir -p "$data"
coord_pid="" worker_pid=""
stop_daemons() {
  # SIGTERM, then wait: the worker drains, the coordinator commits and closes its store.
  for pid in $worker_pid $coord_pid; do
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid"
      wait "$pid" || true
    fi
  done
  worker_pid="" coord_pid=""
}
trap 'status=$?; stop_daemons; [ $status -eq 0 ] || echo "demo failed; daemon logs in $data" >&2' EXIT

log "start coordinator and worker (data in $data)"
"$bin/coordinator/scion-coordinator" --worker-addr="$worker_addr" --client-addr="$SCION_ADDR" \
  --metrics-addr=127.0.0.1:$((base_port + 2)) --data-dir="$data/coordinator" >"$data/coordinator.log" 2>&1 &
coord_pid=$!
"$bin/worker/scion-worker" --coordinator="$worker_addr" --id=demo-worker --data="$data/worker" \
  --job-binary="$bin/jobs/scion-job" --metrics-addr=127.0.0.1:$((base_port + 3)) >"$data/worker.log" 2>&1 &
worker_pid=$!
for _ in $(seq 100); do
  if scion workers -o json --timeout 0.5 2>/dev/null | grep -q '"ready"'; then break; fi
  kill -0 "$coord_pid" && kill -0 "$worker_pid" || { echo "a daemon exited at start" >&2; exit 1; }
  sleep 0.2
done
scion workers

# One job spec per line: gradient descent on a toy quadratic loss for a few learning rates.
sweep_specs() {
  local program='
import sys, time
lr = float(sys.argv[1]); w = 0.0
for step in range(1, 41):
    w -= lr * 2 * (w - 3.0)          # d/dw (w - 3)^2
    loss = (w - 3.0) ** 2
    print("SCION_METRIC {\"step\": %d, \"name\": \"loss\", \"value\": %.6g}" % (step, loss), flush=True)
    time.sleep(0.05)
print("SCION_METRIC {\"step\": 40, \"name\": \"w\", \"value\": %.6g}" % w)
'
  for lr in 0.01 0.05 0.1 0.3 0.5 0.9; do
    python3 -c 'import json,sys; print(json.dumps({"kind": "command", "name": "lr-" + sys.argv[1],
      "params": {"argv": ["python3", "-c", sys.argv[2], sys.argv[1]]}}))' "$lr" "$program"
  done
}

log "submit the sweep"
ids=()
while IFS= read -r spec; do
  ids+=("$(printf '%s' "$spec" | scion submit -)")
done < <(sweep_specs)
echo "submitted jobs ${ids[*]}"

# One line per change until every job whose name contains $1 has ended (updated in place on a
# terminal).
count_states='import json, sys, collections
jobs = json.load(sys.stdin); c = collections.Counter(j["state"] for j in jobs)
done = c["succeeded"] + c["failed"] + c["cancelled"]
print("%d/%d finished  (%s)" % (done, len(jobs), ", ".join("%s %d" % kv for kv in sorted(c.items()))))
sys.exit(0 if done == len(jobs) else 3)'
wait_for() {
  local last="" line rc
  while true; do
    rc=0
    line=$(scion ls --name "$1" -o json | python3 -c "$count_states") || rc=$?
    [ $rc -le 3 ] || exit 1
    if [ "$line" != "$last" ]; then
      if [ -t 1 ]; then printf '\r\033[K%s' "$line"; else echo "$line"; fi
      last=$line
    fi
    [ $rc -eq 0 ] && break
    sleep 0.3
  done
  if [ -t 1 ]; then echo; fi
  scion ls --name "$1"
}

log "progress"
wait_for lr-

log "results"
scion compare "${ids[@]}"

# A real experiment on the model substrate: the same byte-level GPT trained on a text that every
# Debian system carries, with three sequence mixers per layer, then compared on validation loss and
# speed. (Searches, hedgehog conversion and grafting build on exactly these jobs.)
corpus=${SCION_DEMO_CORPUS:-/usr/share/common-licenses/GPL-3}
train_spec() {  # name, layer mixer JSON
  python3 -c 'import json, sys
layer = json.loads(sys.argv[2])
print(json.dumps({"kind": "train", "name": sys.argv[1], "params": {
  "model": {"vocab_size": 256, "n_positions": 64, "n_embd": 64, "n_layer": 2, "n_head": 4,
            "n_inner": 256, "scion_layers": [layer, layer]},
  "data": {"kind": "text", "path": sys.argv[3]},
  "steps": 300, "batch_size": 8, "seq_len": 64, "lr": 3e-3, "warmup": 30,
  "log_every": 10, "eval_every": 100, "checkpoint_every": 100}}))' "$1" "$2" "$corpus"
}
log "train a byte-level GPT on $corpus with three sequence mixers"
train_ids=()
train_ids+=("$(train_spec gpt-softmax '{"mixer": "softmax"}' | scion submit -)")
train_ids+=("$(train_spec gpt-sliding16 '{"mixer": "sliding_window", "window": 16}' | scion submit -)")
train_ids+=("$(train_spec gpt-hedgehog '{"mixer": "linear", "feature_map": "hedgehog"}' | scion submit -)")
echo "submitted jobs ${train_ids[*]}"
wait_for gpt-

log "results: final training metrics side by side"
scion compare "${train_ids[@]}"

failed=$(scion ls --state failed -o json | python3 -c 'import json, sys; print(len(json.load(sys.stdin)))')
log "shut down"
stop_daemons
echo "coordinator and worker stopped"
[ "$failed" -eq 0 ] || { echo "$failed job(s) failed" >&2; exit 1; }
