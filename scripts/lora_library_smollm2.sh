#!/usr/bin/env bash
# The LoRA-library experiment on SmolLM2-135M-Instruct (docs/lora.md): a smaller library than the
# default model's, sized for 2 cores. Five adapters (ARC-Easy, GSM8K, MMLU STEM, code, prose),
# each trained on its task's train half/text for STEPS steps of 8 x 128 tokens on the f32 Hugging
# Face copy of the pulled GGUF, then its PHATGOOSE gates; descriptions written by SmolLM2 itself
# from three examples. Evaluated on the Q4_1 GGUF: loss on 10 tasks' test text, and accuracy
# on the ARC-Easy (held in) and PIQA (held out) test halves with every route.
#   scripts/lora_library_smollm2.sh [OUT] [STEPS] [more lora_library_experiment.py arguments]
set -euo pipefail
out=${1:-build-ref/lora-smol}
steps=${2:-40}
cd "$(dirname "$0")/.."
mkdir -p "$out"
base="$out/smollm2-hf"
[ -d "$base" ] || build/bin/moeforge convert smollm2-135m-instruct "$base" --format hf
python3 scripts/lora_library_experiment.py --out "$out" --base "$base" --eval-model smollm2-135m-instruct \
  --held-in arc,gsm8k,mmlu-stem,code,prose --held-out piqa,mmlu-other,wikitext,reference,math \
  --describe examples --steps "$steps" --gate-steps 10 --rank 8 --lr 1e-3 --windows 8 \
  --accuracy arc,piqa --accuracy-limit 200 "${@:3}"
