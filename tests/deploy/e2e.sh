#!/usr/bin/env bash
# End-to-end check of the observability assets against the real daemons: a coordinator, two
# workers and a real Prometheus (with Scion's alert rules), all on loopback; a few command jobs
# run; then every dashboard query must return data through Prometheus' HTTP API, and every metric
# the dashboards use must be exported. The machines that run this have no GPU, so each worker
# offers one GPU through its --fake-gpus test knob: the GPU series then come from the worker's own
# metric code, with made-up device numbers. Exits 77 (CTest: skipped) when the daemons are not built.
# Usage: e2e.sh REPO BUILD_DIR
set -euo pipefail
# shellcheck source=daemons.sh
source "$(dirname "$0")/daemons.sh"

tmp=$(mktemp -d)
pids=()
# shellcheck disable=SC2317  # called through the EXIT trap
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_http() {  # URL: until it answers, at most 20 s
  for _ in $(seq 200); do
    if python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' "$1" 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  echo "FAILED: $1 did not answer" >&2
  return 1
}

wport=$(free_port); cport=$(free_port); mport=$(free_port); m0=$(free_port); m1=$(free_port); pport=$(free_port)
"$coordinator" --data-dir "$tmp/coord" --worker-addr "tcp://127.0.0.1:$wport" \
  --client-addr "tcp://127.0.0.1:$cport" --metrics-addr "127.0.0.1:$mport" >"$tmp/coordinator.log" 2>&1 &
pids+=($!)
for i in 0 1; do
  port=$m0; [ "$i" = 1 ] && port=$m1
  "$worker" --id "e2e-worker-$i" --coordinator "tcp://127.0.0.1:$wport" --fake-gpus 1:16:9.0 --drain-timeout 1 \
    --metrics-addr "127.0.0.1:$port" --data "$tmp/w$i" --job-binary "$job" >"$tmp/worker$i.log" 2>&1 &
  pids+=($!)
done

mkdir -p "$tmp/prom"
cp -r "$repo/deploy/prometheus/rules" "$tmp/prom/"
cat >"$tmp/prom/prometheus.yml" <<YAML
global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: [rules/scion-alerts.yml]
scrape_configs:
  - job_name: scion-coordinator
    static_configs: [{targets: ["127.0.0.1:$mport"]}]
  - job_name: scion-worker
    static_configs: [{targets: ["127.0.0.1:$m0", "127.0.0.1:$m1"]}]
YAML
prometheus --config.file="$tmp/prom/prometheus.yml" --storage.tsdb.path="$tmp/prom/data" \
  --web.listen-address="127.0.0.1:$pport" >"$tmp/prometheus.log" 2>&1 &
pids+=($!)

wait_http "http://127.0.0.1:$mport/metrics"
wait_http "http://127.0.0.1:$m0/metrics"
wait_http "http://127.0.0.1:$m1/metrics"
wait_http "http://127.0.0.1:$pport/-/ready"

# A few command jobs: successes reporting live metrics, one failure, and one still running while
# the dashboards are queried (live job metrics exist only while a job runs).
start=$(date +%s)
addr="tcp://127.0.0.1:$cport"
for i in 1 2 3; do
  cat >"$tmp/job$i.json" <<JSON
{"kind": "command", "name": "e2e-$i", "params": {"argv": ["sh", "-c",
  "for s in 1 2 3 4 5 6; do echo SCION_METRIC '{\"step\": '\$s', \"name\": \"loss\", \"value\": 0.'\$s'}'; sleep 0.5; done"]}}
JSON
  "$cli" --addr "$addr" submit "$tmp/job$i.json" >/dev/null
done
echo '{"kind": "command", "name": "e2e-fail", "params": {"argv": ["sh", "-c", "exit 3"]}}' >"$tmp/fail.json"
"$cli" --addr "$addr" submit "$tmp/fail.json" >/dev/null || true
cat >"$tmp/long.json" <<'JSON'
{"kind": "command", "name": "e2e-long", "params": {"argv": ["sh", "-c",
  "s=0; while [ $s -lt 240 ]; do s=$((s+1)); echo SCION_METRIC '{\"step\": '$s', \"name\": \"accuracy\", \"value\": 0.5}'; sleep 0.5; done"]}}
JSON
"$cli" --addr "$addr" submit "$tmp/long.json" >/dev/null
"$cli" --addr "$addr" submit "$tmp/job1.json" --wait >/dev/null
sleep 3  # a few more scrapes after the last completion

python3 -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1]).read().decode())' \
  "http://127.0.0.1:$mport/metrics" >"$tmp/exported.txt"
for port in "$m0" "$m1"; do
  python3 -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1]).read().decode())' \
    "http://127.0.0.1:$port/metrics" >>"$tmp/exported.txt"
done
here=$(cd "$(dirname "$0")" && pwd)
status=0
python3 "$here/dashboard_lint.py" --repo "$repo" --exported "$tmp/exported.txt" || status=1
python3 "$here/e2e_queries.py" --repo "$repo" --prometheus "http://127.0.0.1:$pport" --start "$start" \
  || status=1
if [ "$status" != 0 ]; then
  tail -n 20 "$tmp"/*.log >&2
fi
exit "$status"
