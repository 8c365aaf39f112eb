#!/usr/bin/env python3
"""Joins scion-kernel-bench rows with peers.py rows into one table (markdown).

usage: report.py scion.csv peers.csv
ratio = peer ms / scion ms (> 1: Scion is faster); TFLOP/s from the workload's useful FLOPs;
ceiling = that rate over the bf16 GEMM rate measured in the same run.
"""
import sys


def main(scion_csv, peers_csv):
    rows, peers, ceil = [], {}, {}
    for line in open(scion_csv):
        f = line.strip().split(",")
        if len(f) == 6 and f[0] == "scion" and f[1] != "op":
            rows.append((f[1], f[2], f[3], float(f[4]), float(f[5])))
    for line in open(peers_csv):
        f = line.strip().split(",")
        if len(f) == 4 and f[0] == "peer":
            peers.setdefault(f[1], []).append((f[2], float(f[3])))
        elif len(f) == 4 and f[0] == "ceiling":
            ceil[f[1]] = float(f[3])
    gemm = ceil.get("gemm_bf16")
    print(f"bf16 GEMM ceiling (8192^3, same run): {gemm} TFLOP/s; copy: {ceil.get('copy')} TB/s")
    print("| op | shape | scion ms | peer | peer ms | ratio | TFLOP/s | of GEMM ceiling |")
    print("|---|---|---|---|---|---|---|---|")
    for op, shape, key, ms, gflop in rows:
        tflops = gflop / ms if ms > 0 else float("nan")
        frac = f"{tflops / gemm:.2f}" if gemm else "-"
        for name, pms in peers.get(key, [("-", float("nan"))]):
            ratio = pms / ms if ms > 0 else float("nan")
            # Four decimals below 0.1 ms, where three would round a 5 µs kernel by up to 10 %.
            fmt = (lambda v: f"{v:.4f}") if min(ms, pms) < 0.1 else (lambda v: f"{v:.3f}")
            print(f"| {op} | {shape} | {fmt(ms)} | {name} | {fmt(pms)} | {ratio:.2f} | {tflops:.0f} | {frac} |")


if __name__ == "__main__":
    main(*sys.argv[1:3])
