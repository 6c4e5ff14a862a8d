#!/usr/bin/env bash
# llama.cpp applies the GGUF LoRA adapters moeforge writes as moeforge applies them: for two
# PEFT goldens (one with rsLoRA and per-module ranks and alphas, folded into B), `moeforge lora
# convert` writes a GGUF LoRA, llama.cpp's llama-completion (reference environment) generates
# greedily with it on the fixture's GGUF base, and its text (hex: the pieces may split UTF-8) is recorded with the sha256 of both
# files in tests/golden/data/lora/llamacpp_greedy.json (checked by tests/golden/test_lora_golden.cpp).
# Run from the repository root after `make`.
set -euo pipefail
REF=../shared/reference/run.sh
MF=${MOEFORGE:-build/bin/moeforge}
W=build-ref/lora-llamacpp
OUT=tests/golden/data/lora/llamacpp_greedy.json
PROMPT="The answer is"
mkdir -p $W
$MF convert tests/golden/data/models/llama-gqa4-untied $W/base.gguf --type f32 2>/dev/null
records=""
for ad in llama-gqa4-untied-r4 llama-gqa4-untied-rslora; do
  $MF lora convert tests/golden/data/lora/$ad -m $W/base.gguf -o $W/$ad.gguf 2>/dev/null
  text=$($REF sh -c "llama-completion -m $W/base.gguf --lora $W/$ad.gguf -p '$PROMPT' -n 24 --temp 0 -t 1 -no-cnv </dev/null 2>/dev/null")
  records+=$(python3 -c 'import hashlib,json,os,sys; print(json.dumps({"adapter": sys.argv[1], "text_hex": os.fsencode(sys.argv[2])[len(sys.argv[3]):].hex(), "lora_sha256": hashlib.sha256(open(sys.argv[4],"rb").read()).hexdigest()}) + ",")' \
    "$ad" "$text" "$PROMPT" "$W/$ad.gguf")
done
version=$($REF sh -c 'llama-completion --version 2>&1 | head -1')
python3 - "$OUT" "$PROMPT" "$version" "$W/base.gguf" "[${records%,}]" <<'PY'
import hashlib, json, sys
out, prompt, version, base, recs = sys.argv[1:]
json.dump({"generator": "scripts/check_lora_llamacpp.sh", "llama.cpp": version, "prompt": prompt, "n_predict": 24,
           "base_sha256": hashlib.sha256(open(base, "rb").read()).hexdigest(), "records": json.loads(recs)},
          open(out, "w"), indent=1)
PY
cat $OUT
