#!/usr/bin/env python3
"""Table and SVG plot of the LowRA reproduction (scripts/lowra_experiment.sh): held-out loss against
code bits per weight for LowRA (mixed widths, Lloyd-Max levels), RTN and NF at the same budgets,
fixed widths, and LoRA on the LowRA base. Standard library only.

    scripts/lowra_plot.py OUT_DIR SVG_PATH      # prints the markdown table, writes the plot
"""
import json
import math
import pathlib
import sys


def load(out):
    runs = []
    for d in sorted(pathlib.Path(out).iterdir()):
        report = d / "report.json"
        if d.name.startswith(("lowra-b", "fixed-w")) and report.exists():
            r = json.loads(report.read_text())
            runs.append((d.name, r["summary"]))
    return runs


def table(runs):
    rows = ["| run | code bits | total bits | fp32 | LowRA | RTN | NF | LowRA + LoRA | weight rel err LowRA / RTN / NF |",
            "|---|---|---|---|---|---|---|---|---|"]
    for name, s in runs:
        f = lambda k, d=4: f"{s[k]:.{d}f}" if k in s else "—"
        rows.append(f"| {name} | {f('code_bits_per_weight', 3)} | {f('total_bits_per_weight', 3)} | {f('loss_fp32')} | "
                    f"{f('loss_quantized')} | {f('loss_rtn')} | {f('loss_nf')} | {f('loss_finetuned')} | "
                    f"{f('weight_rel_error')} / {f('weight_rel_error_rtn')} / {f('weight_rel_error_nf')} |")
    return "\n".join(rows)


def svg(runs, path):
    series = {  # name -> (colour, dash, marker points)
        "LowRA (mixed 1/2/4)": ("#1f77b4", "", []),
        "RTN (same budget)": ("#d62728", "", []),
        "NF (same budget)": ("#2ca02c", "", []),
        "LowRA + LoRA": ("#9467bd", "", []),
        "LowRA fixed width": ("#1f77b4", "4,3", []),
        "RTN fixed width": ("#d62728", "4,3", []),
        "NF fixed width": ("#2ca02c", "4,3", []),
    }
    fp32 = None
    for name, s in runs:
        bits = s["code_bits_per_weight"]
        fp32 = s.get("loss_fp32", fp32)
        fixed = name.startswith("fixed-w")
        for label, key in (("LowRA", "loss_quantized"), ("RTN", "loss_rtn"), ("NF", "loss_nf")):
            if key in s:
                series[f"{label} fixed width" if fixed else ("LowRA (mixed 1/2/4)" if label == "LowRA" else f"{label} (same budget)")][2].append((bits, s[key]))
        if "loss_finetuned" in s:
            series["LowRA + LoRA"][2].append((bits, s["loss_finetuned"]))
    pts = [p for _, _, ps in series.values() for p in ps]
    if not pts:
        raise SystemExit("no runs found")
    x0, x1 = 0.9, 4.2
    ys = [y for _, y in pts] + ([fp32] if fp32 else [])
    y0, y1 = math.floor(min(ys) * 10) / 10, math.ceil(max(ys) * 10) / 10
    W, H, L, R, T, B = 760, 480, 70, 220, 30, 60
    sx = lambda x: L + (x - x0) / (x1 - x0) * (W - L - R)
    sy = lambda y: T + (y1 - y) / (y1 - y0) * (H - T - B)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{L}" y="18" font-size="14">Held-out loss vs code bits/weight (byte-level GPT on GPL-3)</text>']
    for i in range(11):  # y grid
        y = y0 + (y1 - y0) * i / 10
        out.append(f'<line x1="{L}" x2="{W - R}" y1="{sy(y):.1f}" y2="{sy(y):.1f}" stroke="#eee"/>')
        out.append(f'<text x="{L - 6}" y="{sy(y) + 4:.1f}" text-anchor="end">{y:.2f}</text>')
    for x in (1, 1.15, 1.5, 1.75, 2, 2.5, 3, 4):
        out.append(f'<line x1="{sx(x):.1f}" x2="{sx(x):.1f}" y1="{T}" y2="{H - B}" stroke="#eee"/>')
        out.append(f'<text x="{sx(x):.1f}" y="{H - B + 16}" text-anchor="middle">{x:g}</text>')
    out.append(f'<text x="{(L + W - R) / 2}" y="{H - 18}" text-anchor="middle">code bits per weight</text>')
    out.append(f'<text x="16" y="{(T + H - B) / 2}" transform="rotate(-90 16 {(T + H - B) / 2})" text-anchor="middle">validation loss (nats/byte)</text>')
    out.append(f'<rect x="{L}" y="{T}" width="{W - L - R}" height="{H - T - B}" fill="none" stroke="#444"/>')
    if fp32:
        out.append(f'<line x1="{L}" x2="{W - R}" y1="{sy(fp32):.1f}" y2="{sy(fp32):.1f}" stroke="#000" stroke-dasharray="2,2"/>')
    legend_y = T + 10
    for label, (colour, dash, ps) in series.items():
        if not ps:
            continue
        ps = sorted(ps)
        poly = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in ps)
        out.append(f'<polyline points="{poly}" fill="none" stroke="{colour}" stroke-width="2" stroke-dasharray="{dash}"/>')
        marker = "rect" if "fixed" in label else "circle"
        for x, y in ps:
            if marker == "circle":
                out.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3.5" fill="{colour}"/>')
            else:
                out.append(f'<rect x="{sx(x) - 4:.1f}" y="{sy(y) - 4:.1f}" width="8" height="8" fill="none" stroke="{colour}" stroke-width="2"/>')
        out.append(f'<line x1="{W - R + 12}" x2="{W - R + 40}" y1="{legend_y}" y2="{legend_y}" stroke="{colour}" stroke-width="2" stroke-dasharray="{dash}"/>')
        out.append(f'<text x="{W - R + 46}" y="{legend_y + 4}">{label}</text>')
        legend_y += 20
    if fp32:
        out.append(f'<line x1="{W - R + 12}" x2="{W - R + 40}" y1="{legend_y}" y2="{legend_y}" stroke="#000" stroke-dasharray="2,2"/>')
        out.append(f'<text x="{W - R + 46}" y="{legend_y + 4}">fp32 ({fp32:.3f})</text>')
    out.append("</svg>")
    pathlib.Path(path).write_text("\n".join(out) + "\n")


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    runs = load(sys.argv[1])
    print(table(runs))
    svg(runs, sys.argv[2])


if __name__ == "__main__":
    main()
