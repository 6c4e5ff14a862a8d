#!/usr/bin/env python3
"""Random-weight Mixtral of about 150M parameters (hidden 512, 9 layers, 8 heads, 4 KV heads,
8 experts of width 1024, top-2, vocab 32000, untied), saved as a Hugging Face directory for
the token-routed MoE speed benchmark. Weights do not change the speed of a dense model, but a
MoE's routing does: random weights leave a direction shared by every token in the hidden
states, and a random router then sends most tokens to the same two experts per layer, which
stay in cache. Trained MoEs balance their load (auxiliary loss), so here the token embeddings
are large (std 1) beside the blocks' outputs, and each router row is made orthogonal to the
mean of its layer's input over random tokens: tokens spread over the experts, and decode reads
new experts' weights as a real model's does (bench --json reports the load imbalance). Uses tiny-llama-a's
tokenizer.
    ../shared/reference/run.sh python3 scripts/make_bench_moe_model.py OUT_DIR
"""
import os, shutil, sys

import torch
from transformers import MixtralConfig, MixtralForCausalLM

out = sys.argv[1]
shared = os.environ.get("MOEFORGE_SHARED", "build-ref")
cfg = MixtralConfig(hidden_size=512, num_hidden_layers=9, num_attention_heads=8, num_key_value_heads=4,
                    intermediate_size=1024, num_local_experts=8, num_experts_per_tok=2, vocab_size=32000,
                    max_position_embeddings=4096, rms_norm_eps=1e-5, rope_theta=1000000.0,
                    tie_word_embeddings=False, bos_token_id=0, eos_token_id=0)
torch.manual_seed(0)
model = MixtralForCausalLM(cfg)
with torch.no_grad():
    for n, p in model.named_parameters():
        p.normal_(0, 0.02) if not n.endswith("norm.weight") else p.fill_(1.0)
    model.model.embed_tokens.weight.normal_(0, 1.0)  # each token's own direction dominates its residual stream
# Remove the shared direction from each router, layer by layer (each fix changes later inputs).
ids = torch.randint(0, cfg.vocab_size, (1, 512), generator=torch.Generator().manual_seed(1))
for layer in model.model.layers:
    seen = []
    hook = layer.post_attention_layernorm.register_forward_hook(lambda m, i, o: seen.append(o.detach()))
    with torch.no_grad():
        model(ids)
    hook.remove()
    mean = seen[0].reshape(-1, cfg.hidden_size).mean(0)
    mean = mean / mean.norm()
    with torch.no_grad():
        w = layer.mlp.gate.weight  # [n_expert, hidden]
        w -= torch.outer(w @ mean, mean)
model = model.to(torch.float16)
model.save_pretrained(out)
for f in ("tokenizer.json", "tokenizer_config.json"):
    shutil.copy(os.path.join(shared, "models/tiny-llama-a", f), out)
print("wrote", out, sum(p.numel() for p in model.parameters()) / 1e6, "M parameters")
