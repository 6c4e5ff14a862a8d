#!/usr/bin/env bash
# The DeepSeek (V1) MoE fixture and llama.cpp's side of it: its perplexity on gsm8k_4.txt
# (windows of 128, llama-perplexity's protocol) and its greedy continuation, single-threaded
# (near-ties in random models resolve the same way each run), written to
# tests/golden/data/models/deepseek-gguf/golden.json (continuation: bytes after the prompt,
# trailing newlines dropped, as hex).
# Run from the repository root; needs the reference environment, and a llama-perplexity (the
# reference environment's Debian package has none): LLAMA_PERPLEXITY=/path/to/llama-perplexity,
# e.g. the native build of docs/benchmarks.md.
set -euo pipefail
REF=${REF:-../shared/reference/run.sh}
LLAMA_PERPLEXITY=${LLAMA_PERPLEXITY:?set LLAMA_PERPLEXITY to a llama-perplexity binary}
DIR=tests/golden/data/models/deepseek-gguf
F=$DIR/deepseek-e8-top2-sh2.gguf
PROMPT="The answer is"; N=24
mkdir -p build-ref/models && cp -r ../shared/models/tiny-llama-a build-ref/models/ 2>/dev/null || true
$REF env MOEFORGE_SHARED=build-ref python3 scripts/make_deepseek_fixture.py
ppl=$("$LLAMA_PERPLEXITY" -m "$F" -f ../shared/models/tiny-llama-a/gsm8k_4.txt -c 128 -b 128 -t 1 2>&1 |
      sed -n 's/.*Final estimate: PPL = \([0-9.]*\).*/\1/p')
$REF sh -c "llama-completion -m $F -p '$PROMPT' -n $N --temp 0 -t 1 -no-cnv </dev/null >build-ref/greedy.txt 2>/dev/null"
cont=$(python3 -c 'import sys; t=open(sys.argv[1],"rb").read(); p=sys.argv[2].encode(); print(t[t.index(p)+len(p):].rstrip(b"\n").hex())' build-ref/greedy.txt "$PROMPT")
version=$($REF sh -c 'llama-completion --version 2>&1 | head -1')
pversion=$("$LLAMA_PERPLEXITY" --version 2>&1 | grep -m1 version || true)
cat > "$DIR/golden.json" <<JSON
{"generator": "scripts/make_deepseek_goldens.sh", "llama-completion": "$version", "llama-perplexity": "$pversion",
 "file": "$F",
 "perplexity": {"text": "gsm8k_4.txt", "ctx": 128, "llamacpp_ppl": $ppl},
 "greedy": {"prompt": "$PROMPT", "n": $N, "threads": 1, "continuation_hex": "$cont"}}
JSON
cat "$DIR/golden.json"
