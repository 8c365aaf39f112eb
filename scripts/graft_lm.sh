#!/usr/bin/env bash
# Grafting on byte-level text (docs/EXPERIMENTS.md): a local coordinator and one worker (one CPU job
# at a time) train a 6-layer byte-level GPT teacher on the Vim user manual (Debian vim-runtime,
# Vim licence), then graft its odd attention layers to a sliding window, Hedgehog linear attention
# and a sliding+Hedgehog hybrid, plus the controls: 100 % replacement, random init at the same
# finetune budget, and a self-graft. Prints the loss, compute and speed/memory tables.
#
#   scripts/graft_lm.sh                      # defaults below; SCION_GRAFT_* override them
# SCION_GRAFT_CORPUS: a prepared copy of the corpus (a machine without the Debian package);
# SCION_GRAFT_GPUS=1: every job asks for a GPU (train, both graft stages and eval run there);
# SCION_GRAFT_NPOS: the teacher's n_positions (the longest length graft_speed.sh can time);
# SCION_GRAFT_SEED: the seed of the teacher and of every graft job (default 1);
# SCION_BIN_DIR: prebuilt binaries (scripts/lib/cluster.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

teacher_steps=${SCION_GRAFT_TEACHER_STEPS:-900}
stage2_steps=${SCION_GRAFT_STAGE2_STEPS:-30}
n_positions=${SCION_GRAFT_NPOS:-512}
seed=${SCION_GRAFT_SEED:-1}
source scripts/lib/graft_env.sh
log() { printf '\n== %s\n' "$*"; }

rm -rf "$data"
mkdir -p "$data"
corpus=$data/vim-usr.txt
if [ -n "${SCION_GRAFT_CORPUS:-}" ]; then
  cp "$SCION_GRAFT_CORPUS" "$corpus"
  echo "corpus: $(wc -c <"$corpus") bytes from $SCION_GRAFT_CORPUS (sha256 $(sha256sum <"$corpus" | cut -c1-16))"
else
  cat /usr/share/vim/vim90/doc/usr_*.txt >"$corpus"
  echo "corpus: $(wc -c <"$corpus") bytes from /usr/share/vim/vim90/doc/usr_*.txt (vim-runtime $(dpkg-query -W -f='${Version}' vim-runtime 2>/dev/null || echo '?'))"
fi
# The jobs' resources: a CPU slot, or GPUs (one job at a time on each).
resources=$(python3 -c 'import json, sys; g = int(sys.argv[1]); print(json.dumps({"gpus": g} if g > 0 else {"cpu_ok": True}))' "$gpus")

# --cpu-slots=1: jobs run one after another, so each one's timing is its own.
cluster_start "$data" "$base_port" graft-worker --cpu-slots=1

log "teacher: 6-layer byte-level GPT, $teacher_steps steps"
teacher=$(python3 -c 'import json, sys
print(json.dumps({"kind": "train", "name": "graft-teacher", "resources": json.loads(sys.argv[3]), "params": {
  "model": {"vocab_size": 256, "n_positions": int(sys.argv[4]), "n_embd": 64, "n_layer": 6, "n_head": 4, "n_inner": 256},
  "data": {"kind": "text", "path": sys.argv[1]},
  "steps": int(sys.argv[2]), "batch_size": 8, "seq_len": 128, "lr": 3e-3, "warmup": 40,
  "log_every": 20, "eval_every": 100, "eval_batches": 8, "checkpoint_every": 100,
  "seed": int(sys.argv[5])}}))' "$corpus" "$teacher_steps" "$resources" "$n_positions" "$seed" \
  | scion submit -)
echo "teacher job $teacher"

graft_spec() {  # name, params JSON (merged over the shared settings)
  python3 -c 'import json, sys
p = {"layers": "odd", "init": "distilled", "data": {"kind": "text", "path": sys.argv[3]}, "eval_batches": 8,
     "stage1": {"samples": 48, "steps": 100, "batch_size": 8, "lr": 5e-4, "loss": "l1", "eval_every": 20},
     "stage2": {"steps": int(sys.argv[5]), "lr": 1e-3, "batch_size": 8, "seq_len": 128, "warmup": 2,
                "log_every": 2, "eval_every": 1000},
     "speed": {"seq_lens": [128, 256, 512], "batch_size": 2, "iters": 2}, "seed": int(sys.argv[7])}
p.update(json.loads(sys.argv[2]))
print(json.dumps({"kind": "graft", "name": sys.argv[1], "after": [int(sys.argv[4])],
                  "resources": json.loads(sys.argv[6]),
                  "inputs": {"teacher": "job:%s/model" % sys.argv[4]}, "params": p}))' \
    "$1" "$2" "$corpus" "$teacher" "$stage2_steps" "$resources" "$seed"
}
ids=()
submit() { ids+=("$(graft_spec "$1" "$2" | scion submit -)"); echo "$1: job ${ids[-1]}"; }
submit graft-self         '{"operator": "self"}'
submit graft-sliding32    '{"operator": "sliding:32"}'
submit graft-hedgehog     '{"operator": "hedgehog"}'
submit graft-hybrid16     '{"operator": "hybrid:16,hedgehog"}'
submit graft-hedgehog-all '{"operator": "hedgehog", "layers": "all"}'
submit graft-hedgehog-rnd '{"operator": "hedgehog", "init": "random"}'
submit graft-sliding32-rnd '{"operator": "sliding:32", "init": "random"}'

log "waiting (scion ls)"
while true; do
  left=$(scion ls -o json | python3 -c 'import json, sys
print(sum(j["state"] not in ("succeeded", "failed", "cancelled") for j in json.load(sys.stdin)))')
  [ "$left" -eq 0 ] && break
  sleep 10
done
scion ls

log "teacher"
scion compare "$teacher"
log "grafts"
scion compare "${ids[@]}"
scion compare "${ids[@]}" -o json >"$data/grafts.json"
scion compare "$teacher" -o json >"$data/teacher.json"
echo "results in $data/grafts.json and $data/teacher.json"
log "tables"
scripts/graft_tables.py "$data/teacher.json" "$data/grafts.json"
failed=$(scion ls --state failed -o json | python3 -c 'import json, sys; print(len(json.load(sys.stdin)))')
cluster_stop
[ "$failed" -eq 0 ] || { echo "$failed job(s) failed" >&2; exit 1; }
