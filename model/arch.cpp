#include "model/arch.h"

#include <cstdio>

#include "core/error.h"

namespace mf {

const std::vector<TensorName>& llama_tensor_names() {
  static const std::vector<TensorName> names = {
      {TensorRole::TokEmbd, "model.embed_tokens.weight", "token_embd.weight", false},
      {TensorRole::OutputNorm, "model.norm.weight", "output_norm.weight", false},
      {TensorRole::Output, "lm_head.weight", "output.weight", false},
      {TensorRole::AttnNorm, "model.layers.%d.input_layernorm.weight", "blk.%d.attn_norm.weight", true},
      {TensorRole::Wq, "model.layers.%d.self_attn.q_proj.weight", "blk.%d.attn_q.weight", true},
      {TensorRole::Wk, "model.layers.%d.self_attn.k_proj.weight", "blk.%d.attn_k.weight", true},
      {TensorRole::Wv, "model.layers.%d.self_attn.v_proj.weight", "blk.%d.attn_v.weight", true},
      {TensorRole::Wo, "model.layers.%d.self_attn.o_proj.weight", "blk.%d.attn_output.weight", true},
      {TensorRole::Bq, "model.layers.%d.self_attn.q_proj.bias", "blk.%d.attn_q.bias", true},
      {TensorRole::Bk, "model.layers.%d.self_attn.k_proj.bias", "blk.%d.attn_k.bias", true},
      {TensorRole::Bv, "model.layers.%d.self_attn.v_proj.bias", "blk.%d.attn_v.bias", true},
      {TensorRole::Bo, "model.layers.%d.self_attn.o_proj.bias", "blk.%d.attn_output.bias", true},
      {TensorRole::FfnNorm, "model.layers.%d.post_attention_layernorm.weight", "blk.%d.ffn_norm.weight", true},
      {TensorRole::FfnGate, "model.layers.%d.mlp.gate_proj.weight", "blk.%d.ffn_gate.weight", true},
      {TensorRole::FfnUp, "model.layers.%d.mlp.up_proj.weight", "blk.%d.ffn_up.weight", true},
      {TensorRole::FfnDown, "model.layers.%d.mlp.down_proj.weight", "blk.%d.ffn_down.weight", true},
  };
  return names;
}

const TensorName& tensor_name(TensorRole role) {
  for (auto& n : llama_tensor_names())
    if (n.role == role) return n;
  fail("unknown tensor role");
}

std::string format_name(const char* pattern, int layer) {
  char buf[256];
  std::snprintf(buf, sizeof buf, pattern, layer);
  return buf;
}

ArchInfo arch_from_hf(const std::string& model_type, bool attention_bias, const std::string& label) {
  if (model_type == "llama" || model_type == "mistral" || model_type == "smollm" || model_type == "smollm2")
    return {"llama", attention_bias, attention_bias, false};
  if (model_type == "qwen2") return {"qwen2", true, false, true};
  fail(label, ": unknown architecture '", model_type, "' (supported: llama, mistral, qwen2, smollm)");
}

ArchInfo arch_from_gguf(const std::string& arch, const std::string& label) {
  if (arch == "llama") return {"llama", false, false, false};  // biases are picked up if present
  if (arch == "qwen2") return {"qwen2", true, false, true};
  fail(label, ": unknown architecture '", arch, "' (supported: llama, qwen2)");
}

}  // namespace mf
