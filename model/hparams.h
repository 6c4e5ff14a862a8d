// Hyperparameters of a Llama-family model, independent of the file format.
#pragma once
#include <string>
#include <vector>

namespace mf {

struct RopeScaling {
  std::string type = "none";  // "none" or "llama3"
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

  int n_embd_q() const { return n_head * head_dim; }
  int n_embd_kv() const { return n_head_kv * head_dim; }
  // Throws mf::Error (prefixed with `label`) if the shape is impossible.
  void validate(const std::string& label) const;
};

// Inverse RoPE frequencies [head_dim/2], with llama3 scaling applied if configured.
std::vector<float> rope_inv_freq(const HParams& hp);

}  // namespace mf
