#!/usr/bin/env python3
"""Markdown tables of a grafting run from `scion compare <ids> -o json` files (scripts/graft_lm.sh):
the task metric of teacher / after stage 1 / after stage 2 with the tokens used, the per-layer
regression errors, and forward speed and memory against the teacher by sequence length.

    scripts/graft_tables.py data/graft-lm/teacher.json data/graft-lm/grafts.json
"""
import json
import re
import sys


def main(teacher_path, grafts_path):
    teacher = json.load(open(teacher_path))[0]["summary"]
    grafts = json.load(open(grafts_path))
    print("teacher: val_loss %.4f, %d training tokens, %.1f GPU-s\n" % (
        teacher["val_loss"], teacher.get("tokens", 0), teacher.get("gpu_s", 0)))
    # GPU-seconds: the wall time each stage trained on the job's GPU (0 on the CPU path); the
    # fraction is absent when the teacher recorded none.
    print("| graft | teacher val_loss | after stage 1 | after stage 2 | gap to teacher | tokens (stage 1 + 2) "
          "| % of teacher tokens | stage 1 CPU-s | stage 2 CPU-s | stage 1 GPU-s | stage 2 GPU-s "
          "| % of teacher GPU-s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for g in grafts:
        s = g["summary"]
        if g["state"] != "succeeded":
            print("| %s | %s | | | | | | | | | | |" % (g["name"], g["state"]))
            continue
        tokens = s["stage1_tokens"] + s["stage2_tokens"]
        frac = "%.1f%%" % (100 * s["gpu_s_fraction"]) if "gpu_s_fraction" in s else "–"
        print("| %s | %.4f | %.4f | %.4f | %+.2f%% | %d | %.1f%% | %.1f | %.1f | %.1f | %.1f | %s |" % (
            g["name"], s["teacher_val_loss"], s["stage1_val_loss"], s["stage2_val_loss"],
            100 * s["stage2_rel_gap"], tokens, 100 * s["tokens_fraction"], s["stage1_cpu_s"], s["stage2_cpu_s"],
            s.get("stage1_gpu_s", 0), s.get("stage2_gpu_s", 0), frac))
    print("\nStage-1 relative regression error (validation MSE / mean square of the teacher output), "
          "at the starting weights -> kept weights:\n")
    print("| graft | " + " | ".join("layer %d" % l for l in range(6)) + " |")
    print("|---|" + "---|" * 6)
    for g in grafts:
        s = g["summary"]
        cells = []
        for l in range(6):
            k = "l%d_attn" % l
            if k + "_mse" in s and k + "_rel_error" in s and s[k + "_mse"] > 0:
                power = s[k + "_mse"] / s[k + "_rel_error"] if s[k + "_rel_error"] > 0 else float("nan")
                cells.append("%.3g -> %.3g" % (s[k + "_mse_init"] / power, s[k + "_rel_error"]))
            else:
                cells.append("")
        print("| %s | %s |" % (g["name"], " | ".join(cells)))
    lens = sorted({int(m.group(1)) for g in grafts for k in g["summary"]
                   for m in [re.match(r"grafted_tokens_per_s_n(\d+)$", k)] if m})
    if not lens:
        return
    # Measured on the job's GPU where it held one (memory: the model's device memory), else on the
    # CPU (memory: the process's peak RSS).
    gpu = all(g["summary"].get("grafted_speed_on_gpu") == 1 for g in grafts if g["state"] == "succeeded")
    mem_key, mem_what = ("device_memory_bytes", "the model's device memory") if gpu else \
        ("peak_memory_bytes", "peak RSS of the process")
    print("\nForward speed (tokens/s, batch 2, on the %s) and %s (MiB), teacher vs grafted:\n"
          % ("GPU" if gpu else "CPU", mem_what))
    print("| graft | " + " | ".join("n=%d tok/s (teacher)" % n for n in lens) + " | "
          + " | ".join("n=%d MiB (teacher)" % n for n in lens) + " |")
    print("|---|" + "---|" * (2 * len(lens)))
    for g in grafts:
        s = g["summary"]
        if g["state"] != "succeeded":
            continue
        sp = ["%.0f (%.0f)" % (s["grafted_tokens_per_s_n%d" % n], s["teacher_tokens_per_s_n%d" % n]) for n in lens]
        mem = ["%.1f (%.1f)" % (s["grafted_%s_n%d" % (mem_key, n)] / 2**20, s["teacher_%s_n%d" % (mem_key, n)] / 2**20)
               for n in lens]
        print("| %s | %s | %s |" % (g["name"], " | ".join(sp), " | ".join(mem)))


if __name__ == "__main__":
    main(*sys.argv[1:3])
