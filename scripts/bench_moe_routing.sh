#!/usr/bin/env bash
# Decode and prefill speed of a token-routed MoE under different routings (the checkpoint's
# top-k, --experts-used 1, dynamic top-p at 0.5 and 0.8), configurations interleaved round by
# round so machine noise hits them alike; prints a markdown table with the mean experts per
# token, the active weight bytes per decode token and the speed-up those bytes predict.
# Usage: scripts/bench_moe_routing.sh MODEL.gguf [ROUNDS]   (THREADS, PROMPT, GEN, REPS as in bench)
set -euo pipefail
BIN=${BIN:-build/bin/moeforge}
MODEL=$1; ROUNDS=${2:-3}
T=${THREADS:-2}; P=${PROMPT:-128}; N=${GEN:-64}; R=${REPS:-3}
CONFIGS=("" "--experts-used 1" "--expert-top-p 0.5" "--expert-top-p 0.8")
tmp=$(mktemp -d)
for r in $(seq "$ROUNDS"); do
  for i in "${!CONFIGS[@]}"; do
    $BIN bench -m "$MODEL" -t "$T" -p "$P" -n "$N" -r "$R" --json ${CONFIGS[$i]} 2>/dev/null >> "$tmp/$i"
  done
done
python3 - "$tmp" "${CONFIGS[@]}" <<'PY'
import json, statistics, sys
tmp, configs = sys.argv[1], sys.argv[2:]
rows = [[json.loads(l) for l in open(f"{tmp}/{i}")] for i in range(len(configs))]
med = lambda rs, f: statistics.median(f(r) for r in rs)
base_tg = med(rows[0], lambda r: r["decode_tps"]); base_bytes = rows[0][0]["decode_weight_bytes"]
print("| routing | experts/token (decode) | experts/token (prefill) | active MB/token | prefill tok/s | decode tok/s | decode speed-up | bytes predict |")
print("|---|---|---|---|---|---|---|---|")
for cfg, rs in zip(configs, rows):
    tg = med(rs, lambda r: r["decode_tps"]); pp = med(rs, lambda r: r["prefill_tps"])
    ed = med(rs, lambda r: r["routing"]["decode"]["mean_experts_used"]); ep = med(rs, lambda r: r["routing"]["prefill"]["mean_experts_used"])
    b = med(rs, lambda r: r["decode_weight_bytes"])
    print(f"| {cfg or 'checkpoint top-k'} | {ed:.2f} | {ep:.2f} | {b/1e6:.1f} | {pp:.0f} | {tg:.0f} | {tg/base_tg:.2f} | {base_bytes/b:.2f} |")
PY
rm -rf "$tmp"
