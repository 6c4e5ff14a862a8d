#!/usr/bin/env bash
# moeforge bench and llama.cpp's llama-bench side by side on the same GGUF files, threads
# and token counts, interleaved round by round so machine noise hits both alike.
# Needs the reference environment and the 135M-shape model:
#   ../shared/reference/run.sh python3 scripts/make_bench_model.py build-ref/bench135m
#   build/bin/moeforge convert build-ref/bench135m build-ref/bench135m-f16.gguf --type f16   (and q8_0)
# Each round also measures this machine's DRAM read bandwidth on the same threads just before
# moeforge's run (bench_ops BM_ReadBandwidth), since it moves with the machine's neighbours:
# "of bound" is the median over rounds of decode GB/s / that round's read GB/s.
# LLAMA_BENCH=/path/to/llama-bench uses that build (e.g. one built from current source, see
# docs/benchmarks.md) instead of the reference environment's Debian package; LLAMA_BENCH=none
# runs moeforge and the bandwidth test alone (the llama.cpp columns then read "-").
# Usage: scripts/bench_vs_llamacpp.sh [ROUNDS] [FILES...]   (prints a markdown table)
set -euo pipefail
REF=${REF:-../shared/reference/run.sh}
BIN=${BIN:-build/bin/moeforge}
BENCH_OPS=${BENCH_OPS:-build/bin/bench_ops}
ROUNDS=${1:-3}; shift || true
FILES=("$@")
[ ${#FILES[@]} -gt 0 ] || FILES=(build-ref/bench135m-f16.gguf build-ref/bench135m-q8_0.gguf)
T=${THREADS:-2}; P=${PROMPT:-128}; N=${GEN:-64}; R=${REPS:-3}
tmp=$(mktemp -d)
for f in "${FILES[@]}"; do
  for r in $(seq "$ROUNDS"); do
    $BENCH_OPS --benchmark_filter="BM_ReadBandwidth/$T/" --benchmark_format=json 2>/dev/null |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["benchmarks"][0]["bytes_per_second"] / 1e9)' \
      >> "$tmp/$(basename "$f").bw"
    $BIN bench -m "$f" -t "$T" -p "$P" -n "$N" -r "$R" --json 2>/dev/null >> "$tmp/$(basename "$f").mf"
    if [ "${LLAMA_BENCH:-}" = none ]; then echo '{}' >> "$tmp/$(basename "$f").lc"; continue; fi
    if [ -n "${LLAMA_BENCH:-}" ]; then "$LLAMA_BENCH" -m "$f" -t "$T" -p "$P" -n "$N" -r "$R" -o json 2>/dev/null
    else $REF sh -c "llama-bench -m $f -t $T -p $P -n $N -r $R -o json 2>/dev/null"; fi | python3 -c '
import json,sys
rows=json.load(sys.stdin)
out={}
for r in rows:
    key="prefill_tps" if r["n_prompt"]>0 else "decode_tps"
    out[key]=sorted(r["samples_ts"])[len(r["samples_ts"])//2]
print(json.dumps(out))' >> "$tmp/$(basename "$f").lc"
  done
done
python3 - "$tmp" "${FILES[@]}" <<'PY'
import json, statistics, sys, os
tmp, files = sys.argv[1], sys.argv[2:]
print("| model | prefill moeforge | prefill llama.cpp | ratio | decode moeforge | decode llama.cpp | ratio | decode GB/s (moeforge) | read GB/s (same rounds) | of bound |")
print("|---|---|---|---|---|---|---|---|---|---|")
for f in files:
    b = os.path.basename(f)
    mf = [json.loads(l) for l in open(f"{tmp}/{b}.mf")]
    lc = [json.loads(l) for l in open(f"{tmp}/{b}.lc")]
    med = lambda rows, k: statistics.median(r[k] for r in rows) if all(k in r for r in rows) else None
    pm, pl, dm, dl = med(mf, "prefill_tps"), med(lc, "prefill_tps"), med(mf, "decode_tps"), med(lc, "decode_tps")
    f1 = lambda x: "-" if x is None else f"{x:.1f}"
    ratio = lambda a, b: "-" if a is None or b is None else f"{a / b:.2f}"
    gbps = statistics.median(r["decode_gbps"] for r in mf)
    bw = [float(l) for l in open(f"{tmp}/{b}.bw")]
    of_bound = statistics.median(r["decode_gbps"] / w for r, w in zip(mf, bw))
    print(f"| {b} | {f1(pm)} | {f1(pl)} | {ratio(pm, pl)} | {f1(dm)} | {f1(dl)} | {ratio(dm, dl)} | {gbps:.2f} | {statistics.median(bw):.1f} | {of_bound:.0%} |")
PY
rm -rf "$tmp"
