// Hyperparameters of a Llama-family model, independent of the file format.
#pragma once
#include <string>
#include <vector>

namespace mf {

struct RopeScaling {
  std::string type = "none";  // "none", "llama3" or "linear" (positions divided by factor)
  float factor = 1.0f, low_freq_factor = 1.0f, high_freq_factor = 4.0f;
  int original_max_pos = 8192;
};

struct HParams {
  std::string arch = "llama";  // architecture table name (model/arch.h)
  int n_vocab = 0, n_embd = 0, n_layer = 0, n_head = 0, n_head_kv = 0, head_dim = 0, n_ff = 0;
  int n_ctx_train = 2048;
  float rms_eps = 1e-5f;
  float rope_theta = 10000.0f;
  RopeScaling rope_scaling;
  bool tied_embeddings = false;
  bool rope_neox = true;  // rotate_half pairs (HF layout); false: interleaved pairs (GGUF llama, llama2.c)
  int sliding_window = 0;  // > 0: a query sees only the last sliding_window positions, itself included (Mistral)
  // Interleaved local and global attention (Gemma 3): with swa_pattern N > 0, layer il is a
  // global (full-attention) layer when (il + 1) % N == 0; 0: every layer uses sliding_window.
  int swa_pattern = 0;
  float rope_theta_swa = 0.0f;  // > 0: RoPE base of the sliding-window layers (else rope_theta)
  float attn_scale = 0.0f;      // > 0: attention logit scale (else 1/sqrt(head_dim))
  float embd_scale = 1.0f;      // token embeddings are multiplied by this (Gemma: sqrt(n_embd))

  // Token-routed MoE FFN (Mixtral, Qwen2-MoE, OLMoE, DeepSeek-style); n_expert == 0: dense.
  int n_expert = 0, n_expert_used = 0;
  int n_ff_exp = 0;     // width of one routed expert
  int n_ff_shexp = 0;   // width of the shared expert (0: none)
  bool expert_weights_norm = false;  // chosen experts' weights renormalised to sum 1
  float expert_weights_scale = 1.0f; // then multiplied by this (DeepSeek's routed_scaling_factor)
  float expert_top_p = 0.0f;         // > 0: the checkpoint routes by dynamic top-p (moeforge-trained)
  int expert_max_used = 0;           // its ceiling (0: all experts)
  int n_expert_clusters = 0;         // > 0: layers may carry a cluster gate (moeforge-trained MO-CTE)
  int n_layer_dense_lead = 0;        // the first layers keep a dense FFN (DeepSeek's first_k_dense_replace)
  std::vector<int> dense_layers;     // other layers with a dense FFN (Qwen2-MoE's mlp_only_layers, sparse step)
  bool is_moe_layer(int il) const;

  bool is_swa_layer(int il) const { return sliding_window > 0 && (swa_pattern <= 0 || (il + 1) % swa_pattern != 0); }

  int n_embd_q() const { return n_head * head_dim; }
  int n_embd_kv() const { return n_head_kv * head_dim; }
  // Throws mf::Error (prefixed with `label`) if the shape is impossible.
  void validate(const std::string& label) const;
};

// Inverse RoPE frequencies [head_dim/2], with llama3 scaling applied if configured; swa: those
// of the sliding-window layers (rope_theta_swa, unscaled) when the model sets one.
std::vector<float> rope_inv_freq(const HParams& hp, bool swa = false);

}  // namespace mf
