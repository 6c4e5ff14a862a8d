// Architectures as data: the logical tensors of a decoder block, their names in each file
// layout, and the structural switches of each architecture. Adding an architecture means
// adding a name table and an ArchInfo row in arch.cpp; the forward (session.cpp) reads the
// switches, it has no per-architecture copy.
#pragma once
#include <string>
#include <vector>

namespace mf {

enum class TensorRole {
  TokEmbd, OutputNorm, Output,                       // global
  AttnNorm, Wq, Wk, Wv, Wo, Bq, Bk, Bv, Bo,          // per layer: attention
  AttnQNorm, AttnKNorm, AttnPostNorm,                // per layer: q/k head norms, attention output norm
  FfnNorm, FfnGate, FfnUp, FfnDown, FfnPostNorm,     // per layer: gated FFN
  FfnGateInp, FfnGateExps, FfnUpExps, FfnDownExps,   // per layer: token-routed MoE (router, experts)
  FfnGateShexp, FfnUpShexp, FfnDownShexp, FfnGateInpShexp,  // per layer: shared expert and its gate
  FfnClusterGate, FfnClusterGateB,                   // per layer: cluster-oriented routing (moeforge-trained MO-CTE)
};

struct TensorName {
  TensorRole role;
  const char* hf;    // Hugging Face name, %d = layer (experts: a second %d = expert, one tensor each)
  const char* gguf;  // GGUF name, %d = layer (experts: one merged 3-D tensor [n_expert, rows, cols])
  bool per_layer;
};

// Activation of the gated FFN: act(gate) * up.
enum class FfnAct { SiLU, GeluTanh };

struct ArchInfo {
  std::string name;       // moeforge/GGUF architecture name: "llama", "qwen2", "gemma3"
  bool qkv_bias = false;  // q/k/v projections carry a bias
  bool o_bias = false;    // output projection carries a bias
  bool gguf_rope_neox = false;  // GGUF stores q/k for rotate_half RoPE (qwen2, gemma3) or interleaved (llama)
  // Gemma-style blocks.
  bool qk_norm = false;         // RMSNorm over each head of q and k before RoPE
  bool post_norms = false;      // RMSNorm on the attention and FFN outputs before the residual add
  bool hf_norm_plus_one = false;  // HF norms scale by (1 + w); GGUF stores 1 + w (moeforge keeps 1 + w)
  bool embd_scale = false;      // token embeddings are multiplied by sqrt(n_embd)
  FfnAct ffn_act = FfnAct::SiLU;
  bool qk_norm_full = false;    // RMSNorm over the whole q and k vectors before RoPE (OLMoE)
};

// The logical tensors of an architecture with their names.
const std::vector<TensorName>& tensor_names(const std::string& arch);
const TensorName& tensor_name(const std::string& arch, TensorRole role);
std::string format_name(const char* pattern, int layer, int expert = 0);

// From a Hugging Face config.json's model_type (llama, mistral, qwen2, smollm, gemma3_text,
// mixtral, qwen2_moe, olmoe);
// throws mf::Error "unknown architecture" otherwise.
ArchInfo arch_from_hf(const std::string& model_type, bool attention_bias, const std::string& label);
ArchInfo arch_from_gguf(const std::string& arch, const std::string& label);

}  // namespace mf
