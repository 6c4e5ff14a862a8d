#!/bin/bash
# Alternates `moeforge bench` runs of several builds on one model (side by side on a noisy
# machine) and prints "binary prefill_tps decode_tps" per run, sorted by binary.
#   scripts/bench_alternate.sh MODEL THREADS ROUNDS BIN1 [BIN2 ...]
# e.g. scripts/bench_alternate.sh models/default 2 4 /tmp/old/moeforge build/bin/moeforge
# Output goes through a file, not a pipe: a reader process starting up (python) takes a
# core from the benchmark for its first milliseconds.
set -euo pipefail
[ $# -ge 4 ] || { sed -n 2,6p "$0"; exit 2; }
model=$1 threads=$2 rounds=$3
shift 3
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
for _ in $(seq "$rounds"); do
  for bin in "$@"; do
    "$bin" bench -m "$model" -t "$threads" -p 64 -n 128 -r 5 --json >"$tmp" 2>/dev/null
    python3 -c "import json,sys; d=json.load(open('$tmp')); print(sys.argv[1], round(d['prefill_tps'],1), round(d['decode_tps'],1))" "$bin"
  done
done | sort -s -k1,1
