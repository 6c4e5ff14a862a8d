#!/usr/bin/env bash
# llama.cpp's side of the token-routed MoE fixtures: its own converter's GGUF files (f16 and
# q8_0, written to tests/golden/data/llamacpp/moe/) and its greedy continuations of them,
# single-threaded so that near-ties resolve the same way on every run (random-weight
# fixtures have nearly flat next-token distributions), in tests/golden/data/llamacpp/moe_greedy.json
# (the bytes after the prompt, trailing newlines dropped, as hex: pieces may split UTF-8).
# Run from the repository root (needs ../shared/reference/setup.sh done once):
#   scripts/make_moe_llamacpp_goldens.sh
set -euo pipefail
REF=${REF:-../shared/reference/run.sh}
OUT=tests/golden/data/llamacpp/moe
mkdir -p "$OUT" build-ref
PROMPT="The answer is"
N=24
version=$($REF sh -c 'llama-completion --version 2>&1 | head -1')
cases=()
for fixture in mixtral-e8-top2 qwen2moe-e4-top1 olmoe-e8-top2; do
  for t in f16 q8_0; do
    f="$OUT/$fixture-$t.gguf"
    $REF python3 scripts/llamacpp_convert_fixture.py "tests/golden/data/models/$fixture" --outtype $t --outfile "$f" >/dev/null 2>&1
    $REF sh -c "llama-completion -m $f -p '$PROMPT' -n $N --temp 0 -t 1 -no-cnv </dev/null >build-ref/greedy.txt 2>/dev/null"
    cont=$(python3 -c 'import sys,json; t=open(sys.argv[1],"rb").read(); p=sys.argv[2].encode(); print(json.dumps(t[t.index(p)+len(p):].rstrip(b"\n").hex()))' build-ref/greedy.txt "$PROMPT")
    cases+=("{\"fixture\": \"$fixture\", \"type\": \"$t\", \"file\": \"$f\", \"continuation_hex\": $cont}")
  done
done
{
  echo "{\"generator\": \"scripts/make_moe_llamacpp_goldens.sh\", \"llama.cpp\": \"$version\","
  echo " \"prompt\": \"$PROMPT\", \"n\": $N, \"threads\": 1, \"cases\": ["
  (IFS=$'\n'; echo "${cases[*]}" | sed '$!s/$/,/')
  echo "]}"
} > tests/golden/data/llamacpp/moe_greedy.json
cat tests/golden/data/llamacpp/moe_greedy.json
