#!/usr/bin/env bash
# Greedy continuations of stories260K by llama.cpp (the reference for the engine's
# generate), written to tests/golden/data/llamacpp/stories260K.json.
# Run from the repository root (needs ../shared/reference/setup.sh done once):
#   scripts/make_llamacpp_goldens.sh
set -euo pipefail
REF=${REF:-../shared/reference/run.sh}
mkdir -p build-ref/models/stories260K
cp ../shared/models/stories260K/* build-ref/models/stories260K/
out=tests/golden/data/llamacpp/stories260K.json
version=$($REF sh -c 'llama-completion --version 2>&1 | head -1')
{
  echo '{"generator": "scripts/make_llamacpp_goldens.sh", "llama.cpp": "'"$version"'", "cases": ['
  first=1
  for prompt in "Once upon a time" "Lily and Tom went to the" "The cat"; do
    n=48
    text=$($REF sh -c "llama-completion -m build-ref/models/stories260K/stories260K.gguf -p '$prompt' -n $n --temp 0 -no-cnv 2>/dev/null")
    # llama.cpp echoes the prompt (after its leading space); keep only the continuation.
    cont=$(python3 -c 'import sys,json; t=sys.argv[1]; p=sys.argv[2]; i=t.index(p)+len(p); print(json.dumps(t[i:]))' "$text" "$prompt")
    [ $first -eq 1 ] || echo ','
    first=0
    echo "{\"prompt\": \"$prompt\", \"n\": $n, \"continuation\": $cont}"
  done
  echo ']}'
} > "$out"
cat "$out"
