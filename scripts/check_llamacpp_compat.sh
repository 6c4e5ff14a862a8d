#!/usr/bin/env bash
# Checks that GGUF files written by `moeforge convert` load in llama.cpp and give the same
# greedy text as moeforge. Needs the reference environment (../shared/reference/setup.sh)
# and a built moeforge. Run from the repository root:  scripts/check_llamacpp_compat.sh
set -uo pipefail
REF=${REF:-../shared/reference/run.sh}
BIN=${BIN:-build/bin/moeforge}
W=build-ref/compat
rm -rf "$W"; mkdir -p "$W"
mkdir -p build-ref/models/stories260K && cp ../shared/models/stories260K/* build-ref/models/stories260K/
cases=()
for t in f32 f16 q8_0 q4_0; do
  $BIN convert ../shared/models/stories260K/stories260K.bin "$W/stories-bin-$t.gguf" --type $t 2>/dev/null && cases+=("stories-bin-$t|Once upon a time")
  $BIN convert ../shared/models/stories260K "$W/stories-hf-$t.gguf" --type $t 2>/dev/null && cases+=("stories-hf-$t|Lily and Tom went to the")
done
for d in tests/golden/data/models/*/; do
  n=$(basename "$d")
  for t in f32 q8_0; do
    $BIN convert "$d" "$W/$n-$t.gguf" --type $t 2>/dev/null && cases+=("$n-$t|The answer is")
  done
done
pass=0; fail=0
for c in "${cases[@]}"; do
  name=${c%%|*}; prompt=${c#*|}
  ours=$($BIN generate -m "$W/$name.gguf" -p "$prompt" -n 24 --temp 0)
  theirs=$($REF sh -c "llama-completion -m $W/$name.gguf -p '$prompt' -n 24 --temp 0 -no-cnv 2>/dev/null")
  if [ "$theirs" = "$prompt$ours" ] || [ "$theirs" = " $prompt$ours" ]; then
    echo "same   $name"; pass=$((pass+1))
  else
    echo "DIFFER $name"; echo "  moeforge: $prompt$ours"; echo "  llama.cpp: $theirs"; fail=$((fail+1))
  fi
done
echo "$pass same, $fail different"
[ $fail -eq 0 ]
