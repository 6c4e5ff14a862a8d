#!/usr/bin/env python3
"""Random-weight Llama with SmolLM2-135M's shape (hidden 576, 30 layers, 9 heads, 3 KV heads,
intermediate 1536, vocab 49152, tied embeddings), saved as a Hugging Face directory for speed
benchmarks (weights do not change speed). Uses tiny-llama-a's tokenizer; the GGUF export pads
its vocabulary to 49152.
    ../shared/reference/run.sh python3 scripts/make_bench_model.py OUT_DIR
"""
import os, shutil, sys

import torch
from transformers import LlamaConfig, LlamaForCausalLM

out = sys.argv[1]
shared = os.environ.get("MOEFORGE_SHARED", "build-ref")
cfg = LlamaConfig(hidden_size=576, num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
                  intermediate_size=1536, vocab_size=49152, max_position_embeddings=8192, rms_norm_eps=1e-5,
                  rope_theta=100000.0, tie_word_embeddings=True, bos_token_id=0, eos_token_id=0)
torch.manual_seed(0)
model = LlamaForCausalLM(cfg)
with torch.no_grad():
    for n, p in model.named_parameters():
        p.normal_(0, 0.02) if not n.endswith("norm.weight") else p.fill_(1.0)
model.save_pretrained(out)
for f in ("tokenizer.json", "tokenizer_config.json"):
    shutil.copy(os.path.join(shared, "models/tiny-llama-a", f), out)
print("wrote", out)
