#!/usr/bin/env python3
"""Summarises scripts/moe_train_compare.sh: per variant, final validation loss per domain and
their mean, tokens seen, wall-clock seconds, tokens/s and (MoE) experts per token and load
imbalance at the last step logged without an evaluation; the tokens and seconds each variant takes to reach dense's final mean
validation loss; and three SVGs:
  valid_loss.svg     mean validation loss against tokens and against seconds;
  utilisation.svg    experts per token and load imbalance against step, per MoE variant
                     (dropped share too, where it is ever non-zero);
  trainability.svg   per MO-CTE run with trainability.csv: each expert's trainability (the
                     Jacobian's top singular value) against step, one panel per layer, x where
                     an expert froze.
The upcycled variant counts its dense first half (tokens, seconds and steps). Standard library only.
    python3 scripts/moe_train_summary.py OUT_DIR      (writes OUT_DIR/summary.md and the SVGs)
"""
import csv, math, os, sys

out = sys.argv[1]
secs = dict(l.split() for l in open(os.path.join(out, "seconds.txt")))
variants = [v for v in ["dense", "top2", "topp", "upcycled", "mocte-clusters", "mocte-freeze", "mocte", "lora-experts", "mocte-lora"] if os.path.exists(os.path.join(out, v, "train_log.csv"))]
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
color = {v: COLORS[i % len(COLORS)] for i, v in enumerate(variants)}


def rows_of(v, name="train_log.csv"):
    return list(csv.DictReader(open(os.path.join(out, v, name))))


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


def reach(pts, target):
    """(tokens, seconds) at which the mean validation loss first reaches target, interpolated
    linearly between the two evaluation points around it; None if it never does."""
    for i, (t, s, mean, _) in enumerate(pts):
        if mean <= target:
            if i == 0:
                return t, s
            t0, s0, m0, _ = pts[i - 1]
            f = (m0 - target) / (m0 - mean)
            return t0 + f * (t - t0), s0 + f * (s - s0)
    return None


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
    # Utilisation at the last training step logged without an evaluation: before the trainer
    # read it ahead of evaluating, an evaluation step logged a validation batch's.
    last = next(r for r in reversed(rows_of(v)) if not any(r[k] for k in r if k.startswith("valid_loss_")))
    ept = last.get("experts_per_token", "") or "-"
    imb = last.get("load_imbalance", "") or "-"
    fmt = lambda x: f"{float(x):.2f}" if x not in ("", "-") else "-"
    lines.append(f"| {v} | " + " | ".join(f"{x:.4f}" for x in per.values()) +
                 f" | **{mean:.4f}** | {t / 1e6:.2f}M | {s:.0f} | {t / s:.0f} | {fmt(ept)} | {fmt(imb)} |")
if "dense" in curves:
    target = curves["dense"][-1][2]
    lines += ["", f"Tokens and seconds to reach dense's final mean validation loss ({target:.4f}):",
              "linear interpolation between the two evaluation points that straddle it.", "",
              "| variant | tokens | seconds | share of dense's tokens |", "|---|---|---|---|"]
    for v in variants:
        r = reach(curves[v], target)
        lines.append(f"| {v} | " + (f"{r[0] / 1e6:.3f}M | {r[1]:.0f} | {r[0] / curves['dense'][-1][0]:.2f} |" if r else "not reached | not reached | - |"))
open(os.path.join(out, "summary.md"), "w").write("\n".join(lines) + "\n")
print("\n".join(lines))


# --- SVG: one helper draws every chart ------------------------------------------------------
ML, MT, MB, LEGEND_W = 60, 26, 38, 200  # a panel's margins: left (y ticks), top (title), bottom (x ticks, label)


def num(v):
    return f"{v / 1e6:.3g}M" if abs(v) >= 1e6 else f"{v / 1e3:.3g}k" if abs(v) >= 1e3 else f"{v:.3g}"


def ticks(lo, hi, n=6):
    """About n round values (1, 2, 2.5 or 5 times a power of ten apart) from below lo to above hi."""
    raw = (hi - lo) / (n - 1) or abs(hi) / 2 or 1
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw * (1 - 1e-9))
    first = math.floor(lo / step + 1e-9) * step
    return [first + i * step for i in range(max(1, math.ceil((hi - first) / step - 1e-9)) + 1)]


def chart(px, py, w, h, series, title, xlabel, legend=True):
    """SVG elements of one line chart whose panel starts at (px, py); the plot area is w x h.
    series: dicts with name, color, pts [(x, y)], and optionally dash (bool) and marks [(x, y)]
    (drawn as x). The x axis starts at 0; a legend goes to the right of the plot if asked."""
    xs = [x for s in series for x, _ in s["pts"]]
    ys = [y for s in series for _, y in s["pts"]]
    xt, yt = ticks(min(0, min(xs)), max(xs)), ticks(min(ys), max(ys))
    x0, x1, y0, y1 = xt[0], xt[-1], yt[0], yt[-1]
    L, T = px + ML, py + MT
    sx = lambda x: L + (x - x0) / (x1 - x0) * w
    sy = lambda y: T + (y1 - y) / (y1 - y0) * h
    e = [f'<text x="{L}" y="{py + 16}" font-weight="bold">{title}</text>']
    for y in yt:
        e.append(f'<line x1="{L}" y1="{sy(y):.1f}" x2="{L + w}" y2="{sy(y):.1f}" stroke="#ddd"/>')
        e.append(f'<text x="{L - 5}" y="{sy(y) + 4:.1f}" text-anchor="end">{num(y)}</text>')
    for x in xt:
        e.append(f'<text x="{sx(x):.1f}" y="{T + h + 15}" text-anchor="middle">{num(x)}</text>')
    e.append(f'<line x1="{L}" y1="{T + h}" x2="{L + w}" y2="{T + h}" stroke="black"/>')
    e.append(f'<line x1="{L}" y1="{T}" x2="{L}" y2="{T + h}" stroke="black"/>')
    e.append(f'<text x="{L + w / 2}" y="{T + h + 31}" text-anchor="middle">{xlabel}</text>')
    for i, s in enumerate(series):
        dash = ' stroke-dasharray="6,4"' if s.get("dash") else ""
        pts = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in s["pts"])
        e.append(f'<polyline fill="none" stroke="{s["color"]}" stroke-width="1.5"{dash} points="{pts}"/>')
        for x, y in s.get("marks", []):
            e.append(f'<text x="{sx(x):.1f}" y="{sy(y) + 5:.1f}" text-anchor="middle" font-size="16" fill="{s["color"]}">x</text>')
        if legend:
            ly = T + 8 + 16 * i
            e.append(f'<line x1="{L + w + 10}" y1="{ly}" x2="{L + w + 30}" y2="{ly}" stroke="{s["color"]}" stroke-width="2"{dash}/>')
            e.append(f'<text x="{L + w + 35}" y="{ly + 4}">{s["name"]}</text>')
    return e


def write_svg(name, width, height, elements):
    head = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
            f'<rect width="{width}" height="{height}" fill="white"/>']
    open(os.path.join(out, name), "w").write("\n".join(head + elements + ["</svg>"]) + "\n")


def panels(charts, cols, w, h):
    """Lays charts (title, xlabel, series) out in a grid; the last in each row carries the legend."""
    pw, ph = ML + w + 20, MT + h + MB
    e = []
    for i, (title, xlabel, series) in enumerate(charts):
        r, c = divmod(i, cols)
        e += chart(c * pw, r * ph, w, h, series, title, xlabel, legend=c == cols - 1 or i == len(charts) - 1)
    rows = (len(charts) + cols - 1) // cols
    return min(cols, len(charts)) * pw + LEGEND_W, rows * ph, e


# Mean validation loss against tokens and against seconds.
loss = [("mean validation loss against tokens", "tokens", [dict(name=v, color=color[v], pts=[(p[0], p[2]) for p in c]) for v, c in curves.items()]),
        ("mean validation loss against seconds", "seconds", [dict(name=v, color=color[v], pts=[(p[1], p[2]) for p in c]) for v, c in curves.items()])]
write_svg("valid_loss.svg", *panels(loss, 2, 380, 270))

# Expert utilisation over training, from steps logged without an evaluation (runs before the
# trainer's fix logged a validation batch's utilisation at evaluation steps). The upcycled run's
# steps count after its dense half. A run whose utilisation equals an earlier run's exactly (e.g.
# trainability checks that froze nothing) is dashed and named so.
util, same = {}, {}
for v in variants:
    rows = rows_of(v)
    if "experts_per_token" not in rows[0]:
        continue
    first = int(rows_of("dense-half")[-1]["step"]) if v == "upcycled" else 0
    rows = [r for r in rows if not any(r[k] for k in r if k.startswith("valid_loss_"))]
    util[v] = {k: [(first + int(r["step"]), float(r[k])) for r in rows] for k in ("experts_per_token", "load_imbalance", "dropped_share")}
    same[v] = next((w for w in util if w != v and util[w] == util[v]), None)
keys = [("experts_per_token", "experts per token"), ("load_imbalance", "load imbalance (busiest expert / mean)")]
if any(y for u in util.values() for _, y in u["dropped_share"]):
    keys.append(("dropped_share", "share of assignments dropped"))
charts = [(title, "step", [dict(name=v + (f" (= {same[v]})" if same[v] else ""), color=color[v], pts=u[k], dash=bool(same[v]))
                           for v, u in util.items()]) for k, title in keys]
if util:
    W, H, e = panels(charts, len(charts), 380, 260)
    note = "means over the MoE layers, per logged training step (evaluation steps left out)"
    if len(keys) == 2:
        note += "; no assignment was dropped"
    write_svg("utilisation.svg", W, H + 22, e + [f'<text x="{ML}" y="{H + 14}">{note}</text>'])

# Trainability per expert against step: one row of panels per run, one panel per layer.
charts, cols = [], 1
for v in variants:
    if not os.path.exists(os.path.join(out, v, "trainability.csv")):
        continue
    rows = [r for r in rows_of(v, "trainability.csv") if r["sigma"] and r.get("tokens", "1") != "0"]
    layers = sorted({r.get("layer", "") for r in rows}, key=lambda x: int(x or 0))
    cols = max(cols, len(layers))
    for layer in layers:
        lr = [r for r in rows if r.get("layer", "") == layer]
        series = []
        for j, ex in enumerate(sorted({r["expert"] for r in lr}, key=int)):
            er = [r for r in lr if r["expert"] == ex]
            frozen = [(int(r["step"]), float(r["sigma"])) for r in er if r.get("frozen_now", "0") not in ("", "0")]
            series.append(dict(name=f"expert {ex}", color=COLORS[j % len(COLORS)], pts=[(int(r["step"]), float(r["sigma"])) for r in er], marks=frozen))
        froze = [s["name"][7:] for s in series if s["marks"]]
        charts.append((v + (f", layer {layer}" if layer else "") + (f", froze: {' '.join(froze)}" if froze else ""), "step", series))
if charts:
    W, H, e = panels(charts, cols, 220, 150)
    e.insert(0, f'<text x="{ML}" y="{H + 14}">trainability: top singular value of the Jacobian of an expert\'s outputs w.r.t. its parameters; x marks a freeze</text>')
    write_svg("trainability.svg", W, H + 22, e)
