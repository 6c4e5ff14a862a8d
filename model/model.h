// A loaded model: hyperparameters, weight views and the storage that keeps them alive.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "model/arch.h"
#include "model/hparams.h"
#include "model/mode_layout.h"
#include "ops/moe_routing.h"
#include "tokenizer/tokenizer.h"

namespace mf {

// One expert of a token-routed MoE FFN: a gated FFN of the expert width n_ff_exp.
struct ExpertWeights {
  TensorView gate, up;  // [n_ff_exp, n_embd]
  TensorView down;      // [n_embd, n_ff_exp]
};

class LinearAdapter;  // model/session.h

struct LayerWeights {
  TensorView attn_norm;          // [n_embd] f32
  TensorView wq, wk, wv, wo;     // [n_embd_q, n_embd], [n_embd_kv, n_embd] x2, [n_embd, n_embd_q]
  TensorView bq, bk, bv, bo;     // f32 biases, data == nullptr when absent
  TensorView q_norm, k_norm;     // [head_dim] f32 per-head norms of q and k, or absent (Gemma 3)
  TensorView attn_post_norm;     // [n_embd] f32 norm of the attention output, or absent (Gemma 3)
  TensorView ffn_norm;           // [n_embd] f32
  TensorView ffn_gate, ffn_up;   // [n_ff, n_embd]
  TensorView ffn_down;           // [n_embd, n_ff]
  TensorView ffn_down_b;         // [n_embd] f32 or absent: only experts that compensate pruned neurons
  TensorView ffn_post_norm;      // [n_embd] f32 norm of the FFN output, or absent (Gemma 3)
  // Token-routed MoE FFN in place of ffn_gate/up/down (Mixtral, Qwen2-MoE, OLMoE); absent
  // (ffn_gate_inp.data == nullptr) in dense layers.
  TensorView ffn_gate_inp;             // [n_expert, n_embd] router
  std::vector<ExpertWeights> experts;  // [n_expert] views into the file (merged 3-D or per-expert tensors)
  ExpertWeights shared;                // [n_ff_shexp, n_embd] x2, [n_embd, n_ff_shexp], or absent
  TensorView ffn_gate_inp_shexp;       // [n_embd]: shared expert scaled by sigmoid(x . w), or absent (ungated)
  // Cluster-oriented routing (MO-CTE, trained by moeforge), or absent: a token goes to cluster
  // argmax(gate x + b) and routes among that cluster's n_expert / n_cluster experts only.
  TensorView ffn_cluster_gate, ffn_cluster_gate_b;  // [n_cluster, n_embd] f32, [n_cluster] f32
  bool is_moe() const { return ffn_gate_inp.data != nullptr; }
};

struct Weights {
  TensorView tok_embd;     // [n_vocab, n_embd]
  TensorView output_norm;  // [n_embd] f32
  TensorView output;       // [n_vocab, n_embd] (== tok_embd when tied)
  std::vector<LayerWeights> layers;
};

struct Model {
  std::string path;
  std::string format;  // "safetensors", "gguf", "llama2c"
  ArchInfo arch;
  HParams hp;
  Weights w;
  std::vector<float> rope_freq_factors;  // optional per-frequency divisors (GGUF rope_freqs.weight)
  std::unique_ptr<Tokenizer> tokenizer;  // null when none was found
  std::string tokenizer_source;          // file the tokenizer came from
  std::string chat_template;
  // Expert routing of a token-routed MoE (the checkpoint's top-k, or what --experts-used /
  // --expert-top-p set); each Session slot starts with it. n_expert == 0: a dense model.
  RouteParams routing;
  // MoDE experts beside the backbone (their layers follow the backbone's in w.layers, and
  // hp.n_layer counts them); mode_expert is what every Session slot starts running (kModeGated,
  // kModeBackbone or an expert's index).
  ModeLayout mode;
  int mode_expert = kModeGated;
  // LoRA adapter (or routed library) every Session slot starts with (--lora); null: none. It is
  // shared by the sessions of the model, which must not run at the same time.
  std::shared_ptr<LinearAdapter> adapter;

  // Keeps mapped files and converted buffers alive for the views above.
  std::vector<std::shared_ptr<const void>> storage;

  const Tokenizer& require_tokenizer() const;  // throws mf::Error if there is none
  int64_t n_params() const;
  // rope_inv_freq(hp, swa) with rope_freq_factors applied (global layers only, as llama.cpp).
  std::vector<float> inv_freq(bool swa = false) const;
};

struct LoadOptions {
  std::string tokenizer_path;  // overrides the tokenizer found beside the model
};

// Loads a Hugging Face directory (config.json + safetensors), a .gguf file or a llama2.c
// .bin. Throws mf::Error with a one-line message naming the file and the problem.
std::unique_ptr<Model> load_model(const std::string& path, const LoadOptions& opts = {});

}  // namespace mf
