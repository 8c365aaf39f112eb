#!/usr/bin/env bash
# MQAR recall after conversion (Hedgehog Table 2, Zoology) as Scion jobs on a local cluster: one
# coordinator and one worker start, a `train` job trains a 2-layer softmax teacher on MQAR, then
# one `hedgehog` job per feature map converts both layers (stage 1 only, the same budget) against
# job:<teacher>/model. Prints the table (accuracy, attention KL, entropies, Spearman ρ per map) and
# writes it to $out/table.md; the jobs' reports stay in the coordinator's artifact store.
#
# Knobs (environment): MQ_L, MQ_KV, MQ_VOCAB, MQ_WIDTH, MQ_HEADS, MQ_STEPS, MQ_LR, MQ_BATCH (the
# teacher), HH_STEPS, HH_LR (stage 1), SCION_BUILD_DIR, SCION_HH_PORT, SCION_HH_DATA.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
build=${SCION_BUILD_DIR:-build}
out=${SCION_HH_DATA:-$root/data/hedgehog-mqar}
port=${SCION_HH_PORT:-15655}   # worker socket; client = +1, metrics = +2 and +3
L=${MQ_L:-32} KV=${MQ_KV:-4} V=${MQ_VOCAB:-32} C=${MQ_WIDTH:-64} H=${MQ_HEADS:-4}
steps=${MQ_STEPS:-2000} lr=${MQ_LR:-1e-2} batch=${MQ_BATCH:-32}
hh_steps=${HH_STEPS:-200} hh_lr=${HH_LR:-3e-2}

source scripts/lib/cluster.sh
cluster_build "$build"
rm -rf "$out"
cluster_start "$out" "$port" hedgehog-mqar

teacher=$(python3 -c 'import json, sys
L, KV, V, C, H, steps, lr, B = sys.argv[1:]
print(json.dumps({"kind": "train", "name": "mqar-teacher", "params": {
  "model": {"vocab_size": int(V), "n_positions": int(L), "n_embd": int(C), "n_layer": 2, "n_head": int(H),
            "n_inner": 2 * int(C)},
  "data": {"kind": "mqar", "num_kv": int(KV), "seq_len": int(L)},
  "steps": int(steps), "batch_size": int(B), "lr": float(lr), "warmup": 20, "weight_decay": 0.0,
  "log_every": 50, "eval_every": 250, "eval_batches": 8, "checkpoint_every": 250}}))' \
  "$L" "$KV" "$V" "$C" "$H" "$steps" "$lr" "$batch" | scion submit -)
echo "teacher: job $teacher"
ids=()
# The table's softmax row is the teacher's, from every job's teacher_ metrics.
for map in hedgehog taylor2 hedgehog_exp elu relu performer cosformer; do
  ids+=("$(python3 -c 'import json, sys
map, teacher, L, KV, steps, lr = sys.argv[1:]
print(json.dumps({"kind": "hedgehog", "name": "mqar-" + map, "after": [int(teacher)],
  "inputs": {"teacher": "job:%s/model" % teacher},
  "params": {"feature_map": map, "data": {"kind": "mqar", "num_kv": int(KV), "seq_len": int(L)},
             "eval_batches": 8,
             "stage1": {"steps": int(steps), "lr": float(lr), "batch_size": 16, "log_every": 10},
             "speed": {"seq_lens": [int(L)], "batch_size": 4, "iters": 2}}}))' \
    "$map" "$teacher" "$L" "$KV" "$hh_steps" "$hh_lr" | scion submit -)")
done
echo "conversions: jobs ${ids[*]}"
wait_jobs "$teacher" "${ids[@]}"
scion ls --name mqar-
scion compare "${ids[@]}" -o json | python3 -c 'import json, sys
rows = json.load(sys.stdin)
jobs = rows["jobs"] if isinstance(rows, dict) and "jobs" in rows else rows
def get(j, k):
    s = j.get("summary", j.get("metrics", {}))
    v = s.get(k)
    return "–" if v is None else ("%.3f" % v)
first = jobs[0]
print("| feature map | MQAR accuracy | attention KL | entropy (student) | entropy (teacher) | Spearman ρ | stage-1 steps |")
print("|---|---|---|---|---|---|---|")
print("| softmax (teacher) | %s | 0 | %s | %s | 1 | – |" % (get(first, "teacher_mqar_accuracy"), get(first, "teacher_entropy"), get(first, "teacher_entropy")))
for j in jobs:
    name = j.get("name", "").replace("mqar-", "")
    print("| %s | %s | %s | %s | %s | %s | %s |" % (name, get(j, "converted_mqar_accuracy"), get(j, "attention_kl"),
          get(j, "student_entropy"), get(j, "teacher_entropy"), get(j, "spearman_rho"), get(j, "stage1_steps")))' \
  | tee "$out/table.md"
