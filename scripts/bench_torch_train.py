#!/usr/bin/env python3
"""PyTorch's own training throughput for the same model and batch as a moeforge config
(transformers LlamaForCausalLM, or MixtralForCausalLM when the config has "model": {"moe":
{...}} with top-k routing; AdamW, float32, CPU threads as given), to set beside `moeforge
train`'s tokens/s. The Mixtral step adds its router aux loss, as moeforge's does.
    ../shared/reference/run.sh python3 scripts/bench_torch_train.py configs/default.json [STEPS] [THREADS]
"""
import json, sys, time

import torch
from transformers import LlamaConfig, LlamaForCausalLM, MixtralConfig, MixtralForCausalLM

cfg = json.load(open(sys.argv[1]))
steps = int(sys.argv[2]) if len(sys.argv) > 2 else 10
torch.set_num_threads(int(sys.argv[3]) if len(sys.argv) > 3 else 2)
m = cfg["model"]
vocab = int(cfg.get("vocab_size", 8192))
common = dict(vocab_size=vocab, hidden_size=m["n_embd"], num_hidden_layers=m["n_layer"], num_attention_heads=m["n_head"],
              num_key_value_heads=m["n_head_kv"], max_position_embeddings=m["n_ctx"],
              tie_word_embeddings=m.get("tied_embeddings", True), attn_implementation="eager")
moe = m.get("moe", {})
if moe.get("n_expert", 0) > 0:
    model = MixtralForCausalLM(MixtralConfig(intermediate_size=moe.get("n_ff_expert") or m["n_ff"], num_local_experts=moe["n_expert"],
                                             num_experts_per_tok=moe.get("top_k", 2), output_router_logits=True,
                                             router_aux_loss_coef=moe.get("aux_loss_coef", 0.01), **common))
else:
    model = LlamaForCausalLM(LlamaConfig(intermediate_size=m["n_ff"], **common))
opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1)
B, T = cfg["batch_size"], cfg["seq_len"]
g = torch.Generator().manual_seed(0)
times = []
for s in range(steps + 2):
    x = torch.randint(0, vocab, (B, T + 1), generator=g)
    t0 = time.perf_counter()
    loss = model(input_ids=x[:, :-1], labels=x[:, 1:].contiguous()).loss  # shifts internally; fine for timing
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad()
    if s >= 2:
        times.append(time.perf_counter() - t0)
times.sort()
print(json.dumps({"tokens_per_s": B * T / times[len(times) // 2], "steps": steps, "threads": torch.get_num_threads(),
                  "torch": torch.__version__, "model": type(model).__name__}))
