#!/usr/bin/env bash
# The main job: a local Scion cluster (one coordinator, one worker, data under ./data/demo) edits a
# pretrained model the way the system is meant to be used. A `train` job trains a small softmax
# teacher on MQAR (multi-query associative recall); against its checkpoint, two `hedgehog` jobs
# convert every attention layer to linear attention by attention distillation (Hedgehog's learned
# feature map, and elu+1 as the baseline), and two `graft` jobs replace the odd layers' attention
# (sliding window, Hedgehog) with activation distillation and a short finetune. It prints the
# comparison table and shuts both daemons down cleanly. CPU: a few minutes; jobs use a GPU when the
# worker has one.
#   scripts/demo.sh        (SCION_DEMO_STEPS: teacher steps; SCION_BUILD_DIR, SCION_DEMO_DATA, _PORT)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
build=${SCION_BUILD_DIR:-build-demo}
data=${SCION_DEMO_DATA:-$root/data/demo}
port=${SCION_DEMO_PORT:-15555}   # worker socket; client = +1, metrics = +2 and +3
steps=${SCION_DEMO_STEPS:-1500}

log() { printf '\n== %s\n' "$*"; }

log "bootstrap and build ($build, Release)"
./scripts/bootstrap.sh
source scripts/lib/cluster.sh
cluster_build "$build"

log "start coordinator and worker (data in $data)"
rm -rf "$data"
cluster_start "$data" "$port" demo-worker
scion workers

# MQAR: 4 key-value pairs, then the 4 keys again as queries; the answer is the paired value.
mqar='{"kind": "mqar", "num_kv": 4, "seq_len": 32}'
log "teacher: a 2-layer softmax GPT trained on MQAR for $steps steps"
# The learning test's recipe (tests/nn/learn_test.cc): batches mixing 4 and 8 pairs, one head, a
# long warmup and strong weight decay get the model past the plateau where it only knows which
# values an example holds (about 1 query in 4 right) to the induction circuit (~1000 steps).
teacher=$(python3 -c 'import json, sys
data = dict(json.loads(sys.argv[1]), train_kv=[4, 8])
print(json.dumps({"kind": "train", "name": "demo-teacher", "params": {
  "model": {"vocab_size": 32, "n_positions": 32, "n_embd": 32, "n_layer": 2, "n_head": 1, "n_inner": 64},
  "data": data, "steps": int(sys.argv[2]), "batch_size": 32, "lr": 3e-3, "warmup": 500,
  "weight_decay": 0.5, "log_every": 50, "eval_every": 250, "eval_batches": 8, "checkpoint_every": 250}}))' \
  "$mqar" "$steps" | scion submit -)
echo "teacher: job $teacher"

# Each edit names the teacher's model artifact as its input, so it waits for the teacher.
edit_spec() {  # kind, name, params JSON (merged over the shared ones)
  python3 -c 'import json, sys
kind, name, extra, teacher, mqar = sys.argv[1:]
params = {"data": json.loads(mqar), "eval_batches": 8, "speed": {"seq_lens": [32], "batch_size": 8, "iters": 3}}
params.update(json.loads(extra))
print(json.dumps({"kind": kind, "name": name, "inputs": {"teacher": "job:%s/model" % teacher}, "params": params}))' \
    "$1" "$2" "$3" "$teacher" "$mqar"
}
hedgehog_stage1='"stage1": {"steps": 150, "lr": 3e-2, "batch_size": 16, "log_every": 10}'
graft_stages='"stage1": {"samples": 64, "steps": 150, "batch_size": 8, "lr": 1e-3}, "stage2": {"steps": 100, "lr": 1e-3, "batch_size": 32, "log_every": 10}'
ids=()
submit() { ids+=("$(edit_spec "$1" "$2" "$3" | scion submit -)"); echo "$2: job ${ids[-1]}"; }
log "conversions and grafts against job:$teacher/model"
submit hedgehog demo-hedgehog "{\"feature_map\": \"hedgehog\", $hedgehog_stage1}"
submit hedgehog demo-elu "{\"feature_map\": \"elu\", $hedgehog_stage1}"
submit graft demo-graft-sliding8 "{\"layers\": \"odd\", \"operator\": \"sliding:8\", $graft_stages}"
submit graft demo-graft-hedgehog "{\"layers\": \"odd\", \"operator\": \"hedgehog\", $graft_stages}"

log "progress"
wait_named demo-
scion ls --name demo-
wait_jobs "$teacher" "${ids[@]}"

log "results"
scion compare "$teacher" "${ids[@]}" -o json | python3 -c '
import json, sys
jobs = json.load(sys.stdin)
jobs = jobs["jobs"] if isinstance(jobs, dict) else jobs
def f(v, fmt="%.3f"):
    return "–" if v is None else fmt % v
teacher, edits = jobs[0], jobs[1:]
t = teacher["summary"]
print("MQAR accuracy at the query positions (chance 1/16 among values); teacher: %s after %d steps" %
      (f(t.get("mqar_accuracy")), t.get("steps", 0)))
print()
print("| job | edit | accuracy after the swap | after finetune | attention KL to teacher | tokens/s vs teacher (L=32) |")
print("|---|---|---|---|---|---|")
for j in edits:
    s, kind = j["summary"], j["kind"]
    if kind == "hedgehog":
        edit = "all layers -> linear, " + j["name"].split("-", 1)[1] + " map (stage 1 only)"
        before, after, kl = s.get("converted_mqar_accuracy"), s.get("finetuned_mqar_accuracy"), s.get("attention_kl")
        speed = (s.get("converted_tokens_per_s_n32") or 0) / (s.get("teacher_tokens_per_s_n32") or 1)
    else:
        edit = "odd layers -> " + j["name"].split("graft-", 1)[1] + " (stage 1 + 2)"
        before, after, kl = s.get("stage1_mqar_accuracy"), s.get("stage2_mqar_accuracy"), None
        speed = (s.get("grafted_tokens_per_s_n32") or 0) / (s.get("teacher_tokens_per_s_n32") or 1)
    print("| %s | %s | %s | %s | %s | %.2fx |" % (j["name"], edit, f(before), f(after), f(kl), speed))
'
echo
echo "Reports (tables, per-head fidelity, plots): scion artifacts ls --job <id>; scion artifacts get job:<id>/report"
log "shut down"
cluster_stop
echo "coordinator and worker stopped"
