#!/usr/bin/env python3
"""Summarises scripts/moe_train_compare.sh: per variant, final validation loss per domain and
their mean, tokens seen, wall-clock seconds, tokens/s and (MoE) experts per token and load
imbalance at the end; plus an SVG of mean validation loss against tokens and against seconds.
The upcycled variant counts its dense first half (tokens and seconds). Standard library only.
    python3 scripts/moe_train_summary.py OUT_DIR      (writes OUT_DIR/summary.md and OUT_DIR/valid_loss.svg)
"""
import csv, os, sys

out = sys.argv[1]
secs = dict(l.split() for l in open(os.path.join(out, "seconds.txt")))
variants = [v for v in ["dense", "top2", "topp", "upcycled", "mocte-clusters", "mocte-freeze", "mocte"] if os.path.exists(os.path.join(out, v, "train_log.csv"))]


def rows_of(v):
    return list(csv.DictReader(open(os.path.join(out, v, "train_log.csv"))))


def curve(v, offset_tokens=0, offset_s=0.0, total_s=None):
    rows = rows_of(v)
    domains = [k for k in rows[0] if k.startswith("valid_loss_")]
    pts = []
    last_tokens = float(rows[-1]["tokens_seen"])
    for r in rows:
        if all(r[d] for d in domains):
            t = float(r["tokens_seen"])
            s = offset_s + (total_s or 0) * t / last_tokens  # seconds assumed proportional to tokens within a run
            pts.append((t + offset_tokens, s, sum(float(r[d]) for d in domains) / len(domains), {d[11:]: float(r[d]) for d in domains}))
    return pts


curves = {}
for v in variants:
    if v == "upcycled":
        half = curve("dense-half", 0, 0.0, float(secs["dense-half"]))
        tail = curve("upcycled", half[-1][0], float(secs["dense-half"]), float(secs["upcycled"]))
        curves[v] = half + tail
    else:
        curves[v] = curve(v, 0, 0.0, float(secs[v]))

lines = ["| variant | " + " | ".join(curves[variants[0]][-1][3]) + " | mean valid loss | tokens | seconds | tokens/s | experts/token | load imbalance |",
         "|---" * (len(curves[variants[0]][-1][3]) + 7) + "|"]
for v in variants:
    t, s, mean, per = curves[v][-1]
    last = rows_of(v)[-1]
    ept = last.get("experts_per_token", "") or "-"
    imb = last.get("load_imbalance", "") or "-"
    fmt = lambda x: f"{float(x):.2f}" if x not in ("", "-") else "-"
    lines.append(f"| {v} | " + " | ".join(f"{x:.4f}" for x in per.values()) +
                 f" | **{mean:.4f}** | {t / 1e6:.2f}M | {s:.0f} | {t / s:.0f} | {fmt(ept)} | {fmt(imb)} |")
open(os.path.join(out, "summary.md"), "w").write("\n".join(lines) + "\n")
print("\n".join(lines))

# Two panels: mean validation loss against tokens and against seconds.
W, H, L, B, T, PW = 900, 360, 60, 45, 20, 380
colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2"]
ys = [p[2] for c in curves.values() for p in c]
y0, y1 = min(ys) * 0.98, max(ys) * 1.02
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">']
for panel, (idx, label) in enumerate([(0, "tokens"), (1, "seconds")]):
    x0p = L + panel * (PW + 80)
    xmax = max(p[idx] for c in curves.values() for p in c)
    sx = lambda x: x0p + x / xmax * PW
    sy = lambda y: T + (y1 - y) / (y1 - y0) * (H - T - B)
    svg.append(f'<line x1="{x0p}" y1="{H - B}" x2="{x0p + PW}" y2="{H - B}" stroke="black"/>')
    svg.append(f'<line x1="{x0p}" y1="{T}" x2="{x0p}" y2="{H - B}" stroke="black"/>')
    svg.append(f'<text x="{x0p + PW / 2}" y="{H - 10}" text-anchor="middle">{label} (max {xmax:.3g})</text>')
    for k in range(5):
        y = y0 + (y1 - y0) * k / 4
        svg.append(f'<text x="{x0p - 5}" y="{sy(y) + 4}" text-anchor="end">{y:.2f}</text>')
    for i, (v, c) in enumerate(curves.items()):
        pts = " ".join(f"{sx(p[idx]):.1f},{sy(p[2]):.1f}" for p in c)
        svg.append(f'<polyline fill="none" stroke="{colors[i % len(colors)]}" stroke-width="2" points="{pts}"/>')
        if panel == 1:
            svg.append(f'<text x="{x0p + PW + 5}" y="{T + 15 * i + 10}" fill="{colors[i % len(colors)]}">{v}</text>')
svg.append(f'<text x="{L}" y="14">mean validation loss (4 domains)</text></svg>')
open(os.path.join(out, "valid_loss.svg"), "w").write("\n".join(svg))
