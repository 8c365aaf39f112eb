# shellcheck shell=bash
# A local Scion cluster for the scripts (sourced, not run): one coordinator and one worker on
# loopback, the `scion` CLI pointed at them, waiting for jobs, and a clean shutdown on exit.
#   source scripts/lib/cluster.sh
#   cluster_build <build dir>            # builds the daemons and the CLI (Release when configuring);
#                                        # with SCION_BIN_DIR set, uses the binaries there, no build
#   cluster_bin <build dir>              # the same without building: SCION_BIN_DIR, else <build dir>
#   cluster_start <data dir> <base port> <worker id> [coordinator flags...]
#       worker socket = port, client = port+1, metrics = port+2 (coordinator) and port+3 (worker)
#   wait_jobs <id>...                    # until every job has ended; fails when one did not succeed
#   wait_named <substring>               # one progress line per change until the named jobs end
# The daemons stop (worker first: it stops its jobs; then the coordinator: it commits and closes its
# store) when the sourcing script exits.

# SCION_BIN_DIR: a folder laid out as a build tree's binaries (coordinator/scion-coordinator,
# worker/scion-worker, jobs/scion-job, cli/scion), e.g. one made by scripts/bundle_bins.sh for a
# machine that cannot build the control plane.
cluster_prebuilt() {
  local dir=$1 f
  for f in coordinator/scion-coordinator worker/scion-worker jobs/scion-job cli/scion; do
    [ -x "$dir/$f" ] || { echo "SCION_BIN_DIR: $dir/$f is missing or not executable" >&2; return 1; }
  done
  SCION_BIN=$(cd "$dir" && pwd)
}

cluster_bin() {
  if [ -n "${SCION_BIN_DIR:-}" ]; then cluster_prebuilt "$SCION_BIN_DIR"; else SCION_BIN=$1; fi
}

cluster_build() {
  local build=$1
  if [ -n "${SCION_BIN_DIR:-}" ]; then
    cluster_prebuilt "$SCION_BIN_DIR"
    return
  fi
  [ -f "$build/CMakeCache.txt" ] ||
    cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DSCION_TESTS=OFF -DSCION_BENCH=OFF >/dev/null
  cmake --build "$build" -j"${SCION_JOBS:-2}" --target scion-coordinator scion-worker scion-job scion >/dev/null
  SCION_BIN=$(cd "$build" && pwd)
}

scion() { "$SCION_BIN/cli/scion" "$@"; }

_cluster_pids=()
cluster_stop() {
  local i
  for ((i = ${#_cluster_pids[@]} - 1; i >= 0; i--)); do
    if kill -0 "${_cluster_pids[i]}" 2>/dev/null; then
      kill -TERM "${_cluster_pids[i]}"
      wait "${_cluster_pids[i]}" 2>/dev/null || true
    fi
  done
  _cluster_pids=()
}

cluster_start() {
  local data=$1 port=$2 id=$3
  shift 3
  export SCION_ADDR=tcp://127.0.0.1:$((port + 1))
  mkdir -p "$data"
  # shellcheck disable=SC2154  # rc is assigned inside the trap
  trap 'rc=$?; cluster_stop; [ $rc -eq 0 ] || echo "failed; daemon logs in '"$data"'" >&2' EXIT
  "$SCION_BIN/coordinator/scion-coordinator" --worker-addr=tcp://127.0.0.1:"$port" --client-addr="$SCION_ADDR" \
    --metrics-addr=127.0.0.1:"$((port + 2))" --data-dir="$data/coordinator" "$@" >>"$data/coordinator.log" 2>&1 &
  _cluster_pids+=($!)
  "$SCION_BIN/worker/scion-worker" --coordinator=tcp://127.0.0.1:"$port" --id="$id" --data="$data/worker" \
    --job-binary="$SCION_BIN/jobs/scion-job" --metrics-addr=127.0.0.1:"$((port + 3))" >>"$data/worker.log" 2>&1 &
  _cluster_pids+=($!)
  local _
  for _ in $(seq 150); do
    if scion workers -o json --timeout 0.5 2>/dev/null | grep -q '"ready"'; then return 0; fi
    if ! kill -0 "${_cluster_pids[0]}" || ! kill -0 "${_cluster_pids[1]}"; then
      echo "a daemon exited at start" >&2
      return 1
    fi
    sleep 0.2
  done
  echo "the worker did not become ready" >&2
  return 1
}

wait_jobs() {
  local id
  scion watch "$@" >/dev/null 2>&1 && return 0
  for id in "$@"; do  # each job that did not succeed: its reason and last log lines
    scion watch "$id" >/dev/null && continue
    scion logs "$id" | tail -5 >&2
  done
  return 1
}

wait_named() {
  local last="" line rc
  local count='import json, sys, collections
jobs = json.load(sys.stdin); c = collections.Counter(j["state"] for j in jobs)
done = c["succeeded"] + c["failed"] + c["cancelled"]
print("%d/%d finished  (%s)" % (done, len(jobs), ", ".join("%s %d" % kv for kv in sorted(c.items()))))
sys.exit(0 if done == len(jobs) else 3)'
  while true; do
    rc=0
    line=$(scion ls --name "$1" -o json | python3 -c "$count") || rc=$?
    [ $rc -le 3 ] || return 1
    if [ "$line" != "$last" ]; then
      if [ -t 1 ]; then printf '\r\033[K%s' "$line"; else echo "$line"; fi
      last=$line
    fi
    [ $rc -eq 0 ] && break
    sleep 0.5
  done
  if [ -t 1 ]; then echo; fi
}
