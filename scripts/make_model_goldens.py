#!/usr/bin/env python3
"""Builds small random-weight model fixtures with Hugging Face transformers and records
reference logits and perplexities for them (the engine must match to 1e-4 relative).

Run in the reference environment from the repository root:
    ../shared/reference/run.sh python3 scripts/make_model_goldens.py
Writes tests/golden/data/models/<fixture>/ (config.json, safetensors, tokenizer files,
golden.json). The fixtures cover GQA ratios, tied/untied embeddings, q/k/v bias (Qwen2),
rope_theta 500000 with llama3 scaling, f16/bf16 weights, sharded checkpoints, a
vocabulary above 32k, Mistral's sliding-window attention, Gemma 3's text decoder and the
token-routed MoEs (Mixtral, Qwen2-MoE with a shared expert and dense layers, OLMoE; top-k 1,
2 and 4, renormalised or not). `--only NAME` remakes one.
"""
import json, math, os, shutil, sys

import torch
import transformers
from transformers import Gemma3ForCausalLM, Gemma3TextConfig, LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM, Qwen2Config, Qwen2ForCausalLM
from transformers import MixtralConfig, MixtralForCausalLM, OlmoeConfig, OlmoeForCausalLM, Qwen2MoeConfig, Qwen2MoeForCausalLM
from tokenizers import Tokenizer

OUT = "tests/golden/data/models"
SHARED = os.environ.get("MOEFORGE_SHARED", "../shared")
TOK_DIR = os.path.join(SHARED, "models/tiny-llama-a")
TEXTS = {"gsm8k_4.txt": os.path.join(TOK_DIR, "gsm8k_4.txt"), "f1500.txt": os.path.join(TOK_DIR, "f1500.txt")}

FIXTURES = [
    # name, config class, model class, config kwargs, storage dtype, max shard size
    ("llama-gqa4-untied", LlamaConfig, LlamaForCausalLM,
     dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=8, num_key_value_heads=2,
          intermediate_size=96, vocab_size=1024, tie_word_embeddings=False, rope_theta=10000.0), torch.float32, None),
    ("llama-mha-tied-theta500k-llama3", LlamaConfig, LlamaForCausalLM,
     dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
          intermediate_size=128, vocab_size=1024, tie_word_embeddings=True,
          rope_parameters=dict(rope_type="llama3", rope_theta=500000.0, factor=8.0, low_freq_factor=1.0,
                               high_freq_factor=4.0, original_max_position_embeddings=64)), torch.bfloat16, None),
    ("qwen2-bias-gqa3", Qwen2Config, Qwen2ForCausalLM,
     dict(hidden_size=96, num_hidden_layers=2, num_attention_heads=6, num_key_value_heads=2,
          intermediate_size=160, vocab_size=1024, tie_word_embeddings=False, rope_theta=1000000.0), torch.float16, None),
    ("llama-vocab32k-sharded", LlamaConfig, LlamaForCausalLM,
     dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
          intermediate_size=64, vocab_size=33024, tie_word_embeddings=True, rope_theta=10000.0), torch.float16, "400KB"),
    # Mistral's sliding-window attention, narrow enough that the 8-token probe crosses it.
    ("mistral-swa6", MistralConfig, MistralForCausalLM,
     dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
          intermediate_size=96, vocab_size=1024, tie_word_embeddings=False, rope_theta=10000.0, sliding_window=6),
     torch.float32, None),
    # Gemma 3's text decoder: (1 + w) norms, q/k norms, post-norms, GeGLU, sqrt(n_embd) embedding
    # scale, a query_pre_attn_scalar unlike head_dim, and five sliding layers (window 6, local RoPE
    # base 10000) before a global one: the layout llama.cpp's gemma3 GGUF assumes.
    ("gemma3-swa6", Gemma3TextConfig, Gemma3ForCausalLM,
     dict(hidden_size=64, num_hidden_layers=6, num_attention_heads=4, num_key_value_heads=2, head_dim=32,
          intermediate_size=96, vocab_size=1024, tie_word_embeddings=True, sliding_window=6,
          layer_types=["sliding_attention"] * 5 + ["full_attention"], query_pre_attn_scalar=24,
          rope_theta=1000000.0, rope_local_base_freq=10000.0), torch.float32, None),
    # Token-routed MoEs. Mixtral: softmax, top-2, renormalised; GQA.
    ("mixtral-e8-top2", MixtralConfig, MixtralForCausalLM,
     dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
          intermediate_size=32, num_local_experts=8, num_experts_per_tok=2, vocab_size=1024,
          tie_word_embeddings=False, rope_theta=1000000.0), torch.float16, None),
    # Qwen2-MoE: top-4 without renormalisation, a sigmoid-gated shared expert, and a dense layer
    # (mlp_only_layers) between the MoE ones, as DeepSeek-style models mix them.
    ("qwen2moe-e8-top4-shared-dense", Qwen2MoeConfig, Qwen2MoeForCausalLM,
     dict(hidden_size=64, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
          intermediate_size=96, moe_intermediate_size=32, shared_expert_intermediate_size=48,
          num_experts=8, num_experts_per_tok=4, norm_topk_prob=False, mlp_only_layers=[1],
          decoder_sparse_step=1, vocab_size=1024, tie_word_embeddings=False, rope_theta=1000000.0),
     torch.float16, None),
    # Qwen2-MoE, top-1, every layer MoE (the layout llama.cpp's qwen2moe reads).
    ("qwen2moe-e4-top1", Qwen2MoeConfig, Qwen2MoeForCausalLM,
     dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
          intermediate_size=64, moe_intermediate_size=32, shared_expert_intermediate_size=32,
          num_experts=4, num_experts_per_tok=1, norm_topk_prob=False, mlp_only_layers=[],
          vocab_size=1024, tie_word_embeddings=False, rope_theta=10000.0), torch.float16, None),
    # OLMoE: q/k RMSNorm over the whole projection, top-2 without renormalisation (llama.cpp's
    # olmoe needs as many KV heads as heads).
    ("olmoe-e8-top2", OlmoeConfig, OlmoeForCausalLM,
     dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
          intermediate_size=32, num_experts=8, num_experts_per_tok=2, norm_topk_prob=False,
          vocab_size=1024, tie_word_embeddings=False, rope_theta=10000.0, pad_token_id=None),
     torch.float16, None),
]


def randomize(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(torch.rand(p.shape, generator=g) + 0.5)
            else:
                p.copy_(torch.randn(p.shape, generator=g) * 0.08)


def perplexity(model, ids):
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].double()
    nll = torch.nn.functional.cross_entropy(logits[:-1], torch.tensor(ids[1:]), reduction="mean")
    return math.exp(nll.item()), len(ids)


def main():
    tok = Tokenizer.from_file(os.path.join(TOK_DIR, "tokenizer.json"))
    only = sys.argv[sys.argv.index("--only") + 1] if "--only" in sys.argv else None  # remake one fixture
    for i, (name, cfg_cls, model_cls, kw, dtype, shard) in enumerate(FIXTURES):
        if only is not None and name != only:
            continue
        d = os.path.join(OUT, name)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        cfg = cfg_cls(max_position_embeddings=2048, rms_norm_eps=1e-5, bos_token_id=0, eos_token_id=0, **kw)
        torch.manual_seed(i)
        model = model_cls(cfg).float()
        randomize(model, 1000 + i)
        model = model.to(dtype)
        kwargs = {"max_shard_size": shard} if shard else {}
        model.save_pretrained(d, **kwargs)
        for f in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copy(os.path.join(TOK_DIR, f), d)
        # Reference: the stored (rounded) weights evaluated in float32.
        ref = model_cls.from_pretrained(d, dtype=torch.float32).eval()
        golden = {"generator": "scripts/make_model_goldens.py",
                  "versions": {"transformers": transformers.__version__, "torch": torch.__version__},
                  "ppl": {}}
        for tname, path in TEXTS.items():
            ids = tok.encode(open(path, encoding="utf-8").read(), add_special_tokens=False).ids
            ppl, n = perplexity(ref, ids)
            golden["ppl"][tname] = {"tokens": n, "ppl": ppl}
        probe = [5, 17, 300, 2, 999, 64, 1, 512]
        with torch.no_grad():
            logits = ref(torch.tensor([probe])).logits[0]
        golden["probe_ids"] = probe
        golden["probe_logits_last8"] = [row[:8].tolist() for row in logits]
        golden["probe_argmax"] = logits.argmax(-1).tolist()
        with open(os.path.join(d, "golden.json"), "w") as f:
            json.dump(golden, f, indent=1)
        print(name, golden["ppl"], file=sys.stderr)


if __name__ == "__main__":
    main()
