#!/usr/bin/env bash
# A real search over which layers of the text teacher to graft and with which operator
# (examples/graft_layer_search.json: per layer its own attention, a 32-token sliding window or
# Hedgehog; objectives validation loss after the finetune and forward tokens/s at 512 tokens), next
# to the naive choices (every layer, odd layers, for each operator) run as plain graft jobs on the
# same worker, one job at a time. Prints every point and which of them are on the Pareto front.
#
#   scripts/graft_search.sh [teacher job]     # after scripts/graft_lm.sh, on its data dir
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
teacher=${1:-1}
source scripts/lib/graft_env.sh
cluster_start "$data" "$base_port" graft-worker --cpu-slots=1

# The example with this teacher and corpus.
spec=$data/graft_search.json
python3 - "$teacher" "$data/vim-usr.txt" >"$spec" <<'EOF'
import json, sys
s = json.load(open("examples/graft_layer_search.json"))
s["trial"]["inputs"]["teacher"] = "job:%s/model" % sys.argv[1]
s["trial"]["params"]["data"]["path"] = sys.argv[2]
print(json.dumps(s))
EOF
search=$(scion search create "$spec")
echo "search $search"

# The naive choices, with the trials' own settings.
baseline() {  # name, layers, operator
  python3 - "$spec" "$1" "$2" "$3" <<'EOF' | scion submit -
import json, sys
t = json.load(open(sys.argv[1]))["trial"]
params = dict(t["params"])
del params["operators"]
params["layers"], params["operator"] = sys.argv[3], sys.argv[4]
print(json.dumps({"kind": "graft", "name": "naive-" + sys.argv[2], "inputs": t["inputs"], "params": params}))
EOF
}
ids=()
for op in sliding:32 hedgehog; do
  for layers in all odd; do ids+=("$(baseline "$layers-${op%%:*}" "$layers" "$op")"); done
done
echo "naive choices: jobs ${ids[*]}"

while scion search ls -o json | python3 -c 'import json, sys
s = [x for x in json.load(sys.stdin) if str(x["id"]) == sys.argv[1]]
sys.exit(0 if s and s[0]["state"] == "running" else 1)' "$search"; do sleep 10; done
wait_jobs "${ids[@]}"
scion search show "$search" --plot "$data/graft_search.svg"
scion search show "$search" -o json >"$data/graft_search_result.json"
scion compare "${ids[@]}" -o json >"$data/graft_naive.json"
python3 - "$data/graft_search_result.json" "$data/graft_naive.json" <<'EOF'
import json, sys
res, naive = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
loss, speed = "stage2_val_loss", "grafted_tokens_per_s_n512"
points = []
for t in res["trials"]:
    o = t.get("objectives") or []  # in the spec's order: loss, speed
    if len(o) == 2 and all(isinstance(v, (int, float)) for v in o):
        ops = ",".join(",".join(v) if isinstance(v, list) else str(v) for _, v in sorted(t.get("params", {}).items()))
        points.append(("trial %s" % t["trial"], ops, o[0], o[1]))
for j in naive:
    s = j["summary"]
    if s.get(loss) is not None and s.get(speed) is not None:
        points.append((j["name"], "(" + j["name"].split("-", 1)[1] + ")", s[loss], s[speed]))
def dominated(p):
    return any(q[2] <= p[2] and q[3] >= p[3] and (q[2] < p[2] or q[3] > p[3]) for q in points if q is not p)
print("| point | operators per layer | val loss after finetune | tokens/s at 512 | Pareto |")
print("|---|---|---|---|---|")
for p in sorted(points, key=lambda p: p[2]):
    print("| %s | %s | %.4f | %.0f | %s |" % (p[0], p[1], p[2], p[3], "yes" if not dominated(p) else ""))
EOF
