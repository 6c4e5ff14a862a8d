#!/usr/bin/env bash
# Makes tests/golden/data/lora: PEFT adapters with PEFT's logits, llama.cpp's GGUF conversion of
# two of them, and PEFT's logits on the PEFT directory moeforge writes from a GGUF adapter.
# Needs the reference environment (../shared/reference/setup.sh), PEFT unpacked into
# build-ref/pylib (pip download --no-deps peft; python3 -m zipfile -e peft-*.whl build-ref/pylib),
# llama.cpp's Python converters in $LLAMA_PY (default build-ref/llcpp-py: convert_lora_to_gguf.py,
# convert_hf_to_gguf.py, conversion/ and gguf-py/ from the llama-cpp-python sdist's
# vendor/llama.cpp), and a built moeforge (build/bin/moeforge). Run from the repository root.
set -euo pipefail
REF=../shared/reference/run.sh
LLAMA_PY=${LLAMA_PY:-build-ref/llcpp-py}
MF=${MOEFORGE:-build/bin/moeforge}
OUT=tests/golden/data/lora

$REF env PYTHONPATH=build-ref/pylib python3 scripts/make_lora_goldens.py make
rm -f $OUT/*/README.md  # PEFT's model cards
for name in llama-gqa4-untied-r4 gemma3-swa6-r8; do
  base=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['base'])" $OUT/$name/golden.json)
  $REF env PYTHONPATH=$LLAMA_PY/gguf-py:$LLAMA_PY python3 $LLAMA_PY/convert_lora_to_gguf.py \
    --base "$base" --outtype f32 --outfile $OUT/$name.gguf $OUT/$name
done

# Round trip: moeforge writes llama.cpp's GGUF adapter as PEFT; PEFT loads it.
mkdir -p $OUT/roundtrip build-ref/lora-roundtrip
rm -rf build-ref/lora-roundtrip/llama-gqa4-untied-r4
$MF lora convert $OUT/llama-gqa4-untied-r4.gguf -m tests/golden/data/models/llama-gqa4-untied \
  -o build-ref/lora-roundtrip/llama-gqa4-untied-r4
rec=$OUT/roundtrip/llama-gqa4-untied-r4.json
$REF env PYTHONPATH=build-ref/pylib python3 scripts/make_lora_goldens.py check \
  build-ref/lora-roundtrip/llama-gqa4-untied-r4 tests/golden/data/models/llama-gqa4-untied $rec
python3 - "$rec" build-ref/lora-roundtrip/llama-gqa4-untied-r4/adapter_model.safetensors <<'PY'
import hashlib, json, sys
rec = json.load(open(sys.argv[1]))
rec["written_sha256"] = hashlib.sha256(open(sys.argv[2], "rb").read()).hexdigest()
rec["adapter"] = "moeforge lora convert tests/golden/data/lora/llama-gqa4-untied-r4.gguf"
json.dump(rec, open(sys.argv[1], "w"), indent=1)
PY
# An adapter trained by moeforge (the default model, a short run on GSM8K's train text); PEFT's
# logits on it are its golden.
T=build-ref/lora-trained
rm -rf $T && mkdir -p $T
head -c 300000 ../shared/data/eval/gsm8k/train.jsonl > $T/math.txt
cat > $T/config.json <<JSON
{"lora": {"base": "models/default", "rank": 4, "alpha": 8, "targets": ["q_proj", "v_proj", "down_proj"]},
 "train": {"math": "$T/math.txt"}, "optim": {"lr": 0.005, "min_lr": 0.0005, "warmup_steps": 4, "weight_decay": 0.0},
 "batch_size": 8, "seq_len": 64, "steps": 40, "eval_every": 40, "eval_batches": 1, "checkpoint_every": 40,
 "log_every": 10, "threads": 2, "seed": 11}
JSON
$MF train --config $T/config.json --out $T/run --fresh
rm -rf $OUT/trained-default-r4 && mkdir -p $OUT/trained-default-r4
cp $T/run/adapter_config.json $T/run/adapter_model.safetensors $OUT/trained-default-r4/
$REF env PYTHONPATH=build-ref/pylib python3 scripts/make_lora_goldens.py check \
  $OUT/trained-default-r4 models/default $OUT/trained-default-r4/golden.json
echo "done: $OUT"
