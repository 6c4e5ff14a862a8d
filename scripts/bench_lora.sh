#!/usr/bin/env bash
# Decode and prefill cost of LoRA serving on a base model: the base alone, one adapter merged
# into the weights (same type as the base), one adapter applied per token, Arrow top-k of a
# library of N, and the uniform mix of all N (factors read as f32 or f16); configurations interleaved round by round so
# machine noise hits them alike. Prints a markdown table with each decode time over the base's.
# Usage: scripts/bench_lora.sh BASE MERGE_TYPE N_ADAPTERS [ROUNDS]
#   (THREADS, PROMPT, GEN, REPS as in bench; RANK (8); TOPK (2); WORK dir for the adapters)
# The adapters are `moeforge lora init --random-b` (cost does not depend on the values).
set -euo pipefail
BIN=${BIN:-build/bin/moeforge}
BASE=$1; TYPE=$2; N=$3; ROUNDS=${4:-3}
T=${THREADS:-2}; P=${PROMPT:-128}; G=${GEN:-64}; R=${REPS:-3}; RANK=${RANK:-8}; K=${TOPK:-2}
WORK=${WORK:-$(mktemp -d)}
mkdir -p "$WORK"
LIB=()
for i in $(seq 0 $((N - 1))); do
  [ -d "$WORK/a$i" ] || $BIN lora init -m "$BASE" -o "$WORK/a$i" --rank "$RANK" --random-b --seed "$i" 2>/dev/null
  LIB+=(--lora "a$i=$WORK/a$i")
done
[ -f "$WORK/merged.gguf" ] || $BIN lora merge -m "$BASE" --lora "$WORK/a0" -o "$WORK/merged.gguf" --type "$TYPE" 2>/dev/null
NAMES=("base" "merged a0 ($TYPE)" "a0 per token" "a0 per token, f16" "arrow top-$K of $N" "arrow top-$K of $N, f16"
       "uniform $N, f16")
ARGS=("-m $BASE" "-m $WORK/merged.gguf" "-m $BASE --lora $WORK/a0" "-m $BASE --lora $WORK/a0 --lora-type f16"
      "-m $BASE ${LIB[*]} --lora-route arrow --lora-top-k $K" "-m $BASE ${LIB[*]} --lora-route arrow --lora-top-k $K --lora-type f16"
      "-m $BASE ${LIB[*]} --lora-route uniform --lora-type f16")
tmp=$(mktemp -d)
for r in $(seq "$ROUNDS"); do
  for i in "${!ARGS[@]}"; do
    $BIN bench ${ARGS[$i]} -t "$T" -p "$P" -n "$G" -r "$R" --json 2>/dev/null >> "$tmp/$i"
  done
done
python3 - "$tmp" "${NAMES[@]}" <<'PY'
import json, statistics, sys
tmp, names = sys.argv[1], sys.argv[2:]
rows = [[json.loads(l) for l in open(f"{tmp}/{i}")] for i in range(len(names))]
med = lambda rs, f: statistics.median(f(r) for r in rs)
base_tg = med(rows[0], lambda r: r["decode_tps"]); base_pp = med(rows[0], lambda r: r["prefill_tps"])
print("| configuration | library MB (factors the forward reads) | prefill tok/s | decode tok/s | decode time / base | prefill time / base |")
print("|---|---|---|---|---|---|")
for name, rs in zip(names, rows):
    tg = med(rs, lambda r: r["decode_tps"]); pp = med(rs, lambda r: r["prefill_tps"])
    mb = rs[0].get("lora", {}).get("bytes", 0) / 1e6 if rs[0].get("lora") else 0
    print(f"| {name} | {mb:.1f} | {pp:.0f} | {tg:.1f} | {base_tg/tg:.2f} | {base_pp/pp:.2f} |")
PY
rm -rf "$tmp"
