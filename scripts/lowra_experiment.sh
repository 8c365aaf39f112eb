#!/usr/bin/env bash
# The LowRA reproduction (docs/EXPERIMENTS.md, "LowRA"): every point is a real `lowra` job run by
# scion-job (the runner a worker forks), on the byte-level GPT that the `train` job of step 1 fits to
# the GPL-3 text shipped by Debian's base-files package (/usr/share/common-licenses/GPL-3).
#   scripts/lowra_experiment.sh [build_dir] [out_dir]
# Steps: 1 train the teacher (skipped when out_dir/teacher/model exists), 2 one lowra job per
# budget (LowRA levels, output-aware, RTN and NF baselines at the same budget and assignment, LoRA),
# 3 one lowra job per fixed width (1, 2, 4 bits) for each of lloyd, rtn, nf levels, 4 the table and
# the plot (scripts/lowra_plot.py). Runs on the CPU; with LOWRA_GPUS (e.g. 0) every job holds those
# GPUs, as a worker's job does, so the calibration forwards, the held-out losses and the LoRA
# finetunes (and the teacher's training) run there.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
out=${2:-$build/exp}
job=$build/jobs/scion-job
text=${LOWRA_TEXT:-/usr/share/common-licenses/GPL-3}
mkdir -p "$out"

run_job() {  # run_job NAME SPEC_JSON [INPUTS_JSON]: job.json carries the resolved inputs, as a worker writes it
  local dir=$out/$1
  rm -rf "$dir"  # a fresh job: no checkpoints of an earlier run to resume
  mkdir -p "$dir"
  printf '%s\n' "$2" >"$dir/spec.json"
  printf '{"job_id": 0, "attempt": 1, "gpus": [%s], "inputs": %s}\n' "${LOWRA_GPUS:-}" "${3:-{\}}" >"$dir/job.json"
  "$job" --workdir "$dir" >"$dir/report.log" 2>&1 || { echo "job $1 failed:"; tail -3 "$dir/report.log"; exit 1; }
  grep '"type":"outcome"' "$dir/report.log" | tail -1 >"$dir/outcome.json"
}

if [[ ! -f $out/teacher/model/model.safetensors ]]; then
  run_job teacher '{"kind": "train", "name": "lowra-teacher-gpl3",
   "params": {"model": {"vocab_size": 256, "n_positions": 128, "n_embd": 128, "n_layer": 4, "n_head": 4},
              "data": {"kind": "text", "path": "'"$text"'"},
              "steps": 800, "batch_size": 16, "seq_len": 64, "lr": 2e-3, "warmup": 40, "min_lr_ratio": 0.1,
              "weight_decay": 0.1, "val_fraction": 0.1, "log_every": 20, "eval_every": 200, "eval_batches": 8,
              "checkpoint_every": 400, "seed": 1}}'
fi
teacher=$(cd "$out/teacher/model" && pwd)
common='"text": {"path": "'"$text"'", "seq_len": 64, "batch_size": 8, "batches": 8},
        "calibration": {"seq_len": 64, "batch_size": 8, "batches": 4}, "baselines": ["rtn", "nf"]'
for budget in 1.15 1.5 1.75 2 2.5 4; do
  echo "lowra budget $budget"
  run_job "lowra-b$budget" '{"kind": "lowra", "name": "lowra-b'"$budget"'",
    "params": {"budget_bits": '"$budget"', "widths": [1, 2, 4], "method": "lloyd", '"$common"',
               "finetune": {"rank": 8, "alpha": 16, "steps": 60, "lr": 2e-3, "batch_size": 8, "seq_len": 64}}}' \
    '{"model": "'"$teacher"'"}'
done
for width in 1 2 4; do
  echo "fixed width $width"
  run_job "fixed-w$width" '{"kind": "lowra", "name": "fixed-w'"$width"'",
    "params": {"budget_bits": '"$width"', "widths": ['"$width"'], "method": "lloyd", '"$common"'}}' \
    '{"model": "'"$teacher"'"}'
done
python3 scripts/lowra_plot.py "$out" docs/lowra_loss_vs_bits.svg | tee "$out/table.md"
