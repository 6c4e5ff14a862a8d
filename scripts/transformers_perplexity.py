#!/usr/bin/env python3
"""Perplexity of a Hugging Face model directory (or a GGUF file, which transformers dequantises
to float32) with transformers (float32), computed the way
`moeforge perplexity --ctx N` does: tokens without special tokens, consecutive windows of N
tokens, exp(mean NLL of every token of a window but its first).
    ../shared/reference/run.sh python3 scripts/transformers_perplexity.py MODEL_DIR|FILE.gguf TEXT_FILE|IDS.json [CTX]
IDS.json (`moeforge tokenize -f TEXT --json`) scores moeforge's token ids, bypassing transformers'
tokenizer (its GGUF tokenizer conversion for Gemma 3 splits text differently from llama.cpp's).
Prints JSON {"tokens", "ppl", "transformers"}.
"""
import json, math, sys

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

import os

# Debian's python3-gguf has no package version (importlib reports 'N/A'), which transformers'
# version gate cannot parse: the gate is bypassed, the module itself is present.
import transformers.utils.import_utils as _iu
_iu.is_gguf_available = lambda *a, **k: True
for _m in ("transformers.utils", "transformers.modeling_gguf_pytorch_utils", "transformers.modeling_utils",
           "transformers.tokenization_utils_base", "transformers.configuration_utils"):
    try:
        __import__(_m)
        sys.modules[_m].is_gguf_available = _iu.is_gguf_available
    except (ImportError, AttributeError):
        pass

model_dir, text_file = sys.argv[1], sys.argv[2]
kw = {}
if model_dir.endswith(".gguf"):
    model_dir, kw["gguf_file"] = os.path.dirname(os.path.abspath(model_dir)), os.path.basename(model_dir)
tok = AutoTokenizer.from_pretrained(model_dir, **kw)
model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, **kw).eval()
ctx = int(sys.argv[3]) if len(sys.argv) > 3 else model.config.max_position_embeddings
if text_file.endswith(".json"):
    ids = json.load(open(text_file))["ids"]
else:
    ids = tok(open(text_file, encoding="utf-8").read(), add_special_tokens=False)["input_ids"]
total, n = 0.0, 0
with torch.no_grad():
    for start in range(0, len(ids) - 1, ctx):
        w = ids[start:start + ctx]
        if len(w) < 2:
            break
        logits = model(torch.tensor([w])).logits[0].double()
        total += torch.nn.functional.cross_entropy(logits[:-1], torch.tensor(w[1:]), reduction="sum").item()
        n += len(w) - 1
print(json.dumps({"tokens": len(ids), "scored": n, "ppl": math.exp(total / n), "transformers": transformers.__version__}))
