#!/usr/bin/env python3
"""Joins scion-nn-bench and bench/nn/peers.py CSV rows into one markdown table: per workload,
tokens/s and peak memory of each implementation and Scion's speed relative to each peer.

    python3 bench/nn/report.py scion.csv peers.csv
"""
import csv
import sys


def rows(path):
    with open(path) as f:
        return [r for r in csv.reader(f) if r and r[0] != "impl" and len(r) == 8]


def main():
    all_rows = []
    for p in sys.argv[1:]:
        all_rows += rows(p)
    print("| model | B | T | impl | ms/step | tokens/s | peak GiB | scion ÷ this |")
    print("|---|---|---|---|---|---|---|---|")
    scion = {(r[1], r[2], r[3]): float(r[5]) for r in all_rows if r[0] == "scion"}
    for r in sorted(all_rows, key=lambda r: (int(r[3]), r[1], r[0] != "scion", r[0])):
        s = scion.get((r[1], r[2], r[3]))
        ratio = f"{s / float(r[5]):.2f}" if s and r[0] != "scion" else ""
        print(f"| {r[1]} | {r[2]} | {r[3]} | {r[0]} | {r[4]} | {int(float(r[5])):,} | {r[6]} | {ratio} |")


if __name__ == "__main__":
    main()
