#!/usr/bin/env python3
"""A random-weight DeepSeek (V1) MoE fixture written directly as GGUF with gguf-py
(transformers has no DeepSeek-V1 class, so llama.cpp's `deepseek` architecture is the
independent reference: scripts/make_deepseek_goldens.sh records its perplexity and text).

Shape: hidden 64, 3 layers (the first dense, n_ff 96; then MoE), 4 heads, 2 KV heads, 8
routed experts of width 32, top-2 without renormalisation, weights scaled by 1.5, 2 shared
experts (one ungated FFN of width 64), vocabulary 1024 (tiny-llama-a's byte-level BPE).
Matrices f16, norms and routers f32. Run in the reference environment from the repository root:
    ../shared/reference/run.sh env MOEFORGE_SHARED=build-ref python3 scripts/make_deepseek_fixture.py
Writes tests/golden/data/models/deepseek-gguf/deepseek-e8-top2-sh2.gguf.
"""
import json, os

import numpy as np
import gguf

OUT = "tests/golden/data/models/deepseek-gguf"
SHARED = os.environ.get("MOEFORGE_SHARED", "../shared")
TOK_DIR = os.path.join(SHARED, "models/tiny-llama-a")
E, L, H, HKV, FF, NE, K, FE, NSH, V = 64, 3, 4, 2, 96, 8, 2, 32, 2, 1024
HD = E // H
SCALE = 1.5


def main():
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, "deepseek-e8-top2-sh2.gguf")
    rng = np.random.default_rng(2024)
    mat = lambda *shape: (rng.standard_normal(shape) * 0.08).astype(np.float16)
    norm = lambda n: (rng.random(n) + 0.5).astype(np.float32)
    w = gguf.GGUFWriter(path, "deepseek")
    w.add_name("moeforge deepseek fixture")
    w.add_context_length(2048)
    w.add_embedding_length(E)
    w.add_block_count(L)
    w.add_feed_forward_length(FF)
    w.add_head_count(H)
    w.add_head_count_kv(HKV)
    w.add_rope_dimension_count(HD)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(V)
    w.add_leading_dense_block_count(1)
    w.add_expert_count(NE)
    w.add_expert_used_count(K)
    w.add_expert_feed_forward_length(FE)
    w.add_expert_shared_count(NSH)
    w.add_expert_weights_scale(SCALE)
    tok = json.load(open(os.path.join(TOK_DIR, "tokenizer.json"), encoding="utf-8"))
    vocab = sorted(tok["model"]["vocab"].items(), key=lambda kv: kv[1])
    special = {a["content"] for a in tok["added_tokens"]}
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt-2")
    w.add_token_list([t for t, _ in vocab])
    w.add_token_types([gguf.TokenType.CONTROL if t in special else gguf.TokenType.NORMAL for t, _ in vocab])
    w.add_token_merges([" ".join(m) if isinstance(m, list) else m for m in tok["model"]["merges"]])
    w.add_bos_token_id(0)
    w.add_eos_token_id(0)
    w.add_add_bos_token(False)
    w.add_tensor("token_embd.weight", mat(V, E))
    w.add_tensor("output_norm.weight", norm(E))
    w.add_tensor("output.weight", mat(V, E))
    for il in range(L):
        b = f"blk.{il}."
        w.add_tensor(b + "attn_norm.weight", norm(E))
        w.add_tensor(b + "attn_q.weight", mat(E, E))
        w.add_tensor(b + "attn_k.weight", mat(HKV * HD, E))
        w.add_tensor(b + "attn_v.weight", mat(HKV * HD, E))
        w.add_tensor(b + "attn_output.weight", mat(E, E))
        w.add_tensor(b + "ffn_norm.weight", norm(E))
        if il == 0:
            w.add_tensor(b + "ffn_gate.weight", mat(FF, E))
            w.add_tensor(b + "ffn_up.weight", mat(FF, E))
            w.add_tensor(b + "ffn_down.weight", mat(E, FF))
            continue
        w.add_tensor(b + "ffn_gate_inp.weight", (rng.standard_normal((NE, E)) * 0.3).astype(np.float32))
        w.add_tensor(b + "ffn_gate_exps.weight", mat(NE, FE, E))
        w.add_tensor(b + "ffn_up_exps.weight", mat(NE, FE, E))
        w.add_tensor(b + "ffn_down_exps.weight", mat(NE, E, FE))
        w.add_tensor(b + "ffn_gate_shexp.weight", mat(NSH * FE, E))
        w.add_tensor(b + "ffn_up_shexp.weight", mat(NSH * FE, E))
        w.add_tensor(b + "ffn_down_shexp.weight", mat(E, NSH * FE))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    print("wrote", path)

if __name__ == "__main__":
    main()
