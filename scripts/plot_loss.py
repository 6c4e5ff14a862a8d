#!/usr/bin/env python3
"""Draws train_log.csv (written by moeforge train) as an SVG loss curve: training loss per
logged step and validation loss per domain at evaluation steps. Standard library only.
    python3 scripts/plot_loss.py OUT_DIR/train_log.csv loss.svg
"""
import csv, sys

rows = list(csv.DictReader(open(sys.argv[1])))
series = {"train": [(int(r["step"]), float(r["train_loss"])) for r in rows]}
for key in rows[0]:
    if key.startswith("valid_loss_"):
        pts = [(int(r["step"]), float(r[key])) for r in rows if r[key]]
        if pts:
            series["valid " + key[len("valid_loss_"):]] = pts
W, H, L, R, T, B = 720, 420, 60, 170, 20, 45
xs = [x for s in series.values() for x, _ in s]
ys = [y for s in series.values() for _, y in s]
x0, x1, y0, y1 = 0, max(xs), min(ys) * 0.95, max(ys) * 1.02
sx = lambda x: L + (x - x0) / (x1 - x0 or 1) * (W - L - R)
sy = lambda y: T + (y1 - y) / (y1 - y0 or 1) * (H - T - B)
colors = ["#222222", "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"]
out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
       f'<rect width="{W}" height="{H}" fill="white"/>',
       f'<line x1="{L}" y1="{H-B}" x2="{W-R}" y2="{H-B}" stroke="black"/>',
       f'<line x1="{L}" y1="{T}" x2="{L}" y2="{H-B}" stroke="black"/>',
       f'<text x="{(L+W-R)/2}" y="{H-8}" text-anchor="middle">step</text>',
       f'<text x="14" y="{(T+H-B)/2}" transform="rotate(-90 14 {(T+H-B)/2})" text-anchor="middle">loss (nats/token)</text>']
for i in range(6):
    y = y0 + (y1 - y0) * i / 5
    out.append(f'<text x="{L-6}" y="{sy(y)+4:.1f}" text-anchor="end">{y:.2f}</text>')
    out.append(f'<line x1="{L}" y1="{sy(y):.1f}" x2="{W-R}" y2="{sy(y):.1f}" stroke="#ddd"/>')
    x = x0 + (x1 - x0) * i / 5
    out.append(f'<text x="{sx(x):.1f}" y="{H-B+16}" text-anchor="middle">{int(x)}</text>')
for i, (name, pts) in enumerate(series.items()):
    c = colors[i % len(colors)]
    path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
    out.append(f'<polyline fill="none" stroke="{c}" stroke-width="{1 if name == "train" else 2}" points="{path}"/>')
    out.append(f'<text x="{W-R+10}" y="{T+16+18*i}" fill="{c}">{name}</text>')
out.append("</svg>")
open(sys.argv[2], "w").write("\n".join(out) + "\n")
