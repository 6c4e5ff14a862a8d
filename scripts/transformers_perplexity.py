#!/usr/bin/env python3
"""Perplexity of a Hugging Face model directory with transformers (float32), computed the way
`moeforge perplexity --ctx N` does: tokens without special tokens, consecutive windows of N
tokens, exp(mean NLL of every token of a window but its first).
    ../shared/reference/run.sh python3 scripts/transformers_perplexity.py MODEL_DIR TEXT_FILE [CTX]
Prints JSON {"tokens", "ppl", "transformers"}.
"""
import json, math, sys

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

model_dir, text_file = sys.argv[1], sys.argv[2]
tok = AutoTokenizer.from_pretrained(model_dir)
model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
ctx = int(sys.argv[3]) if len(sys.argv) > 3 else model.config.max_position_embeddings
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
