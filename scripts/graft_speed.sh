#!/usr/bin/env bash
# Forward speed of the teacher and the grafted models of scripts/graft_lm.sh, measured by `eval`
# jobs alone on the worker (one job at a time) after the grafts have finished: the in-job numbers
# of the graft kind share the process with its training and a busy machine, these do not. The
# teacher runs first and last, so the spread between its two runs shows the machine's noise.
#
#   scripts/graft_speed.sh <teacher job> <graft job>...   (the job ids graft_lm.sh printed)
# SCION_GRAFT_SPEED_LENS ("128 256 512"), SCION_GRAFT_SPEED_BATCH (2), SCION_GRAFT_GPUS (0; 1: the
# eval jobs run on a GPU, where the memory column is still the process's host RSS).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
iters=${SCION_GRAFT_SPEED_ITERS:-5}
lens=${SCION_GRAFT_SPEED_LENS:-128 256 512}
batch=${SCION_GRAFT_SPEED_BATCH:-2}
source scripts/lib/graft_env.sh
# The same store and artifacts as the grafting run; one job at a time.
cluster_start "$data" "$base_port" graft-worker --cpu-slots=1

teacher=$1
ids=()
for src in "$teacher" "${@:2}" "$teacher"; do
  ids+=("$(python3 -c 'import json, sys
g = int(sys.argv[5])
print(json.dumps({"kind": "eval", "name": "speed-of-%s" % sys.argv[1],
  "resources": {"gpus": g} if g > 0 else {"cpu_ok": True}, "inputs": {"model": "job:%s/model" % sys.argv[1]},
  "params": {"throughput": {"seq_lens": [int(n) for n in sys.argv[3].split()], "batch_size": int(sys.argv[4]),
                            "iters": int(sys.argv[2])}}}))' \
    "$src" "$iters" "$lens" "$batch" "$gpus" | scion submit -)")
done
while true; do
  left=$(scion ls --name speed-of- -o json | python3 -c 'import json, sys
print(sum(j["state"] not in ("succeeded", "failed", "cancelled") for j in json.load(sys.stdin)))')
  [ "$left" -eq 0 ] && break
  sleep 3
done
scion ls --name speed-of- -o json >"$data/speed_jobs.json"  # states, times and summaries of every speed job
scion compare "${ids[@]}" -o json | python3 -c 'import json, sys
rows = json.load(sys.stdin)
lens = [int(n) for n in sys.argv[1].split()]
print("| model (job) | " + " | ".join("tokens/s n=%d" % n for n in lens) + " | "
      + " | ".join("peak RSS MiB n=%d" % n for n in lens) + " |")
print("|---|" + "---|" * (2 * len(lens)))
for r in rows:
    s = r["summary"]
    print("| %s | %s | %s |" % (r["name"].replace("speed-of-", "job "),
        " | ".join("%.0f" % s.get("tokens_per_s_n%d" % n, float("nan")) for n in lens),
        " | ".join("%.1f" % (s.get("peak_memory_bytes_n%d" % n, float("nan")) / 2**20) for n in lens)))' "$lens"
