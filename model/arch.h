// Architectures as data: the logical tensors of a Llama-family block and their names in
// each file layout. Adding an architecture means adding a row to the tables in arch.cpp.
#pragma once
#include <string>
#include <vector>

namespace mf {

enum class TensorRole {
  TokEmbd, OutputNorm, Output,                       // global
  AttnNorm, Wq, Wk, Wv, Wo, Bq, Bk, Bv, Bo,          // per layer: attention
  FfnNorm, FfnGate, FfnUp, FfnDown,                  // per layer: SwiGLU FFN
};

struct TensorName {
  TensorRole role;
  const char* hf;    // Hugging Face name, %d = layer
  const char* gguf;  // GGUF name, %d = layer
  bool per_layer;
};

// All logical tensors of the Llama family with their names.
const std::vector<TensorName>& llama_tensor_names();
const TensorName& tensor_name(TensorRole role);
std::string format_name(const char* pattern, int layer);

struct ArchInfo {
  std::string name;       // moeforge/GGUF architecture name: "llama", "qwen2"
  bool qkv_bias = false;  // q/k/v projections carry a bias
  bool o_bias = false;    // output projection carries a bias
  bool gguf_rope_neox = false;  // GGUF stores q/k for rotate_half RoPE (qwen2) or interleaved (llama)
};

// From a Hugging Face config.json's model_type (llama, mistral, qwen2, smollm...); throws
// mf::Error "unknown architecture" otherwise.
ArchInfo arch_from_hf(const std::string& model_type, bool attention_bias, const std::string& label);
ArchInfo arch_from_gguf(const std::string& arch, const std::string& label);

}  // namespace mf
