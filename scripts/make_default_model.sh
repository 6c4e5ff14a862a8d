#!/usr/bin/env bash
# Rebuilds the default model (models/default/) from scratch on a Debian 12 machine:
# corpus -> tokenizer -> training -> model card. Hours on 2 cores; resumable (rerun it).
# Run from the repository root after `make build`.
set -euo pipefail
BIN=${BIN:-build/bin/moeforge}
RUN=${RUN:-build-ref/default-run}
python3 scripts/build_corpus.py --out data/corpus
# Tokenizer: byte-level BPE (8192) on the first 4 MB of each domain's train split.
mkdir -p build-ref/toksample
for d in code math prose reference; do
  head -c 4000000 "data/corpus/$d/train.txt" | iconv -c -f UTF-8 -t UTF-8 > "build-ref/toksample/$d.txt"
done
$BIN train-tokenizer build-ref/toksample/*.txt -o build-ref/tok8k --vocab-size 8192
# Training (resumes from $RUN/checkpoint.pt when present). Passive OpenMP waiting keeps a
# shared machine usable; it costs little on a dedicated one.
OMP_WAIT_POLICY=PASSIVE $BIN train -c configs/default.json -o "$RUN"
mkdir -p models/default
cp "$RUN"/{config.json,model.safetensors,tokenizer.json,tokenizer_config.json,train_log.csv} models/default/
scripts/make_model_card.sh models/default
