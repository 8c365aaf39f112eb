#!/usr/bin/env bash
# MQAR recall after conversion (Hedgehog Table 2, Zoology) as Scion jobs on a local cluster: one
# coordinator and one worker start, a `train` job trains a 2-layer softmax teacher on MQAR, then
# one `hedgehog` job per feature map converts both layers (stage 1 only, the same budget) against
# job:<teacher>/model. Prints the table (accuracy, also with each layer alone converted, attention
# KL, entropies, Spearman ρ per map) and writes it to $out/table.md; the jobs' reports stay in the
# coordinator's artifact store.
#
# Knobs (environment): MQ_L, MQ_KV, MQ_VOCAB, MQ_WIDTH, MQ_HEADS, MQ_STEPS, MQ_LR, MQ_BATCH,
# MQ_WARMUP, MQ_WD, MQ_EVAL_EVERY, MQ_SEED, MQ_TRAIN_KV (the teacher; MQ_TRAIN_KV="4 8": each training batch
# split over these kv, the data's train_kv; empty: all at MQ_KV), MQ_GPUS (GPUs for the teacher's train jobs; 0: CPU),
# MQ_WARM="L0 KV0 STEPS" (a first train job on the shorter task, MQAR L0/kv0 for STEPS steps, that the
# teacher continues from: Zoology trains on a mix of lengths), HH_STEPS, HH_LR, HH_BATCH,
# HH_EVAL_BATCHES (stage 1 and the evaluation), HH_MAPS (the feature maps converted; default all
# seven), HH_FEATURE_DIM (the job's feature_dim for the maps that take one; default theirs), HH_LAYERS
# (the layers each conversion replaces, the job's `layers` as JSON, e.g. [1]; default both), HH_ROWS
# (stage1.rows, one conversion of each map per word: "scored" trains the last layer on the query
# rows, its jobs named mqar-<map>-scored, for the maps that train; default "all"), HH_GPU_MAPS (the maps whose conversion job holds a
# GPU: its stage 1, teacher forward and distillation, runs there; default none), HH_CPU_STEPS
# (stage-1 steps of the learned maps converted on the CPU; default HH_STEPS), SCION_HH_CPU_SLOTS
# (conversions run at once),
# MQ_SCRATCH_MAPS="taylor2 elu …" (the other side of Table 2: for each map a `train` job trains the
# same 2-layer model from scratch with linear attention under that map in both layers, same recipe;
# their accuracy is printed after the table), SCION_BUILD_DIR, SCION_BIN_DIR (prebuilt binaries,
# scripts/lib/cluster.sh), SCION_HH_PORT, SCION_HH_DATA.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
build=${SCION_BUILD_DIR:-build}
out=${SCION_HH_DATA:-$root/data/hedgehog-mqar}
port=${SCION_HH_PORT:-15655}   # worker socket; client = +1, metrics = +2 and +3
# The defaults are the README demo's teacher recipe (a small model that leaves the MQAR plateau on
# a CPU: one head, kv 4 and 8 mixed in every batch, long warmup, strong weight decay).
L=${MQ_L:-32} KV=${MQ_KV:-4} V=${MQ_VOCAB:-32} C=${MQ_WIDTH:-32} H=${MQ_HEADS:-1}
steps=${MQ_STEPS:-1500} lr=${MQ_LR:-3e-3} batch=${MQ_BATCH:-32} warmup=${MQ_WARMUP:-500} wd=${MQ_WD:-0.5}
eval_every=${MQ_EVAL_EVERY:-250} seed=${MQ_SEED:-1} gpus=${MQ_GPUS:-0} warm=${MQ_WARM:-} train_kv=${MQ_TRAIN_KV-4 8}
hh_steps=${HH_STEPS:-200} hh_lr=${HH_LR:-3e-2} hh_batch=${HH_BATCH:-16} hh_eval=${HH_EVAL_BATCHES:-8}
hh_gpu_maps=" ${HH_GPU_MAPS:-} " hh_cpu_steps=${HH_CPU_STEPS:-$hh_steps} scratch_maps=${MQ_SCRATCH_MAPS:-}
hh_fdim=${HH_FEATURE_DIM:-0} hh_layers=${HH_LAYERS:-} hh_rows=${HH_ROWS:-all}
hh_maps=${HH_MAPS:-hedgehog taylor2 hedgehog_exp elu relu performer cosformer}

source scripts/lib/cluster.sh
cluster_build "$build"
rm -rf "$out"
cluster_start "$out" "$port" hedgehog-mqar ${SCION_HH_CPU_SLOTS:+--cpu-slots="$SCION_HH_CPU_SLOTS"}

# A 2-layer teacher: from scratch (params.model), or continuing a first job (inputs.model, $5). With
# MIXER_MAP set, both layers are linear attention under that feature map instead of softmax.
teacher_spec() {  # name, MQAR L, kv, steps, job to continue from (or "")
  python3 -c 'import json, os, sys
name, L, KV, steps, start, n_pos, V, C, H, lr, B, warmup, wd, every, seed, gpus, train_kv = sys.argv[1:]
data = {"kind": "mqar", "num_kv": int(KV), "seq_len": int(L)}
if train_kv.split():
  data["train_kv"] = [int(k) for k in train_kv.split()]
spec = {"kind": "train", "name": name, "params": {
  "data": data,
  "steps": int(steps), "batch_size": int(B), "lr": float(lr), "warmup": int(warmup), "weight_decay": float(wd),
  "log_every": 50, "eval_every": int(every), "eval_batches": 8, "checkpoint_every": int(every), "seed": int(seed)}}
if start:
  spec["after"] = [int(start)]
  spec["inputs"] = {"model": "job:%s/model" % start}
else:
  spec["params"]["model"] = {"vocab_size": int(V), "n_positions": int(n_pos), "n_embd": int(C), "n_layer": 2,
                             "n_head": int(H), "n_inner": 2 * int(C)}
  if os.environ.get("MIXER_MAP"):
    spec["params"]["model"]["scion_layers"] = [{"mixer": "linear", "feature_map": os.environ["MIXER_MAP"]}] * 2
if int(gpus) > 0:
  spec["resources"] = {"gpus": int(gpus)}
print(json.dumps(spec))' "$@" "$L" "$V" "$C" "$H" "$lr" "$batch" "$warmup" "$wd" "$eval_every" "$seed" "$gpus" "$train_kv"
}
start=""
if [ -n "$warm" ]; then
  read -r L0 KV0 warm_steps <<<"$warm"
  start=$(teacher_spec mqar-teacher-warm "$L0" "$KV0" "$warm_steps" "" | scion submit -)
  echo "teacher, first on L=$L0 kv=$KV0: job $start"
fi
teacher=$(teacher_spec mqar-teacher "$L" "$KV" "$steps" "$start" | scion submit -)
echo "teacher: job $teacher"
ids=()
# The table's softmax row is the teacher's, from every job's teacher_ metrics.
for rows in $hh_rows; do
for map in $hh_maps; do
  # Only the learned maps train: the others' conversion is the same whatever the rows.
  [[ $rows == all || " hedgehog hedgehog_exp taylor2 " == *" $map "* ]] || continue
  gpu=0 map_steps=$hh_cpu_steps
  if [[ "$hh_gpu_maps" == *" $map "* ]]; then gpu=1 map_steps=$hh_steps; fi
  ids+=("$(python3 -c 'import json, sys
map, teacher, L, KV, steps, lr, B, evals, gpu, fdim, layers, rows = sys.argv[1:]
spec = {"kind": "hedgehog", "name": "mqar-" + map + ("" if rows == "all" else "-" + rows), "after": [int(teacher)],
  "inputs": {"teacher": "job:%s/model" % teacher},
  "params": {"feature_map": map, "data": {"kind": "mqar", "num_kv": int(KV), "seq_len": int(L)},
             "eval_batches": int(evals),
             "stage1": {"steps": int(steps), "lr": float(lr), "batch_size": int(B), "log_every": 10, "rows": rows},
             "speed": {"seq_lens": [int(L)], "batch_size": 4, "iters": 2}}}
if int(fdim) and map in ("hedgehog", "hedgehog_exp", "performer", "taylor2"):
  spec["params"]["feature_dim"] = int(fdim)
if layers:
  spec["params"]["layers"] = json.loads(layers)
if int(gpu):
  spec["resources"] = {"gpus": 1}
print(json.dumps(spec))' \
    "$map" "$teacher" "$L" "$KV" "$map_steps" "$hh_lr" "$hh_batch" "$hh_eval" "$gpu" "$hh_fdim" "$hh_layers" "$rows" | scion submit -)")
done
done
echo "conversions: jobs ${ids[*]}"
scratch=()
for map in $scratch_maps; do
  scratch+=("$(MIXER_MAP=$map teacher_spec "mqar-scratch-$map" "$L" "$KV" "$steps" "" | scion submit -)")
done
wait_jobs ${start:+"$start"} "$teacher" "${ids[@]}" ${scratch[@]+"${scratch[@]}"}
scion ls --name mqar-
scion ls --name mqar- -o json | python3 -c 'import json, sys
print("wall seconds per job: " + ", ".join("%s %.0f" % (j["name"], j["ended"] - j["started"])
                                          for j in json.load(sys.stdin) if j["started"] and j["ended"]))'
echo "teacher (job $teacher): $(scion logs "$teacher" | grep -m1 'training on' || true)"
for id in "${ids[@]}"; do echo "job $id: $(scion logs "$id" | grep 'stage1: distillation' | tail -1 || true)"; done
scion metrics "$teacher" --name mqar_accuracy --csv
scion compare "${ids[@]}" -o json | python3 -c 'import json, sys
rows = json.load(sys.stdin)
jobs = rows["jobs"] if isinstance(rows, dict) and "jobs" in rows else rows
def get(j, k):
    s = j.get("summary", j.get("metrics", {}))
    v = s.get(k)
    return "–" if v is None else ("%.3f" % v)
def alone(j):  # the accuracy with each converted layer alone converted, where there are several
    return " / ".join(get(j, "converted_mqar_accuracy_layer%d" % l) for l in range(2))
first = jobs[0]
print("| feature map | MQAR accuracy | layer 0 / layer 1 alone | attention KL | KL, query rows | entropy (student) | entropy (teacher) | Spearman ρ | stage-1 steps |")
print("|---|---|---|---|---|---|---|---|---|")
print("| softmax (teacher) | %s | – | 0 | 0 | %s | %s | 1 | – |" % (get(first, "teacher_mqar_accuracy"), get(first, "teacher_entropy"), get(first, "teacher_entropy")))
for j in jobs:
    name = j.get("name", "").replace("mqar-", "")
    print("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (name, get(j, "converted_mqar_accuracy"), alone(j),
          get(j, "attention_kl"), get(j, "attention_kl_scored"), get(j, "student_entropy"), get(j, "teacher_entropy"),
          get(j, "spearman_rho"), get(j, "stage1_steps")))' \
  | tee "$out/table.md"
if ((${#scratch[@]})); then
  echo "trained from scratch (the teacher's recipe, both layers linear attention):"
  scion compare "${scratch[@]}" -o json | python3 -c 'import json, sys
rows = json.load(sys.stdin)
for j in (rows["jobs"] if isinstance(rows, dict) and "jobs" in rows else rows):
    s = j.get("summary", j.get("metrics", {}))
    print("| %s, trained from scratch | %s |" % (j.get("name", "").replace("mqar-scratch-", ""),
          "–" if s.get("mqar_accuracy") is None else "%.3f" % s["mqar_accuracy"]))' | tee -a "$out/table.md"
fi
