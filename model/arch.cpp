#include "model/arch.h"

#include <cstdio>

#include "core/error.h"

namespace mf {

namespace {

// The Llama family (Llama, Mistral, Qwen2, SmolLM).
const std::vector<TensorName>& llama_names() {
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
      // Mixtral (llama.cpp writes it as a llama GGUF with experts).
      {TensorRole::FfnGateInp, "model.layers.%d.block_sparse_moe.gate.weight", "blk.%d.ffn_gate_inp.weight", true},
      {TensorRole::FfnGateExps, "model.layers.%d.block_sparse_moe.experts.%d.w1.weight", "blk.%d.ffn_gate_exps.weight", true},
      {TensorRole::FfnUpExps, "model.layers.%d.block_sparse_moe.experts.%d.w3.weight", "blk.%d.ffn_up_exps.weight", true},
      {TensorRole::FfnDownExps, "model.layers.%d.block_sparse_moe.experts.%d.w2.weight", "blk.%d.ffn_down_exps.weight", true},
      {TensorRole::FfnClusterGate, "model.layers.%d.block_sparse_moe.cluster_gate.weight", "blk.%d.ffn_cluster_gate.weight", true},
      {TensorRole::FfnClusterGateB, "model.layers.%d.block_sparse_moe.cluster_gate.bias", "blk.%d.ffn_cluster_gate.bias", true},
  };
  return names;
}

// The attention and dense-FFN names of the Llama family, then a router and experts named
// under mlp. (Qwen2-MoE, OLMoE, DeepSeek), each in one tensor per expert (HF) or merged (GGUF).
std::vector<TensorName> llama_with_mlp_experts() {
  std::vector<TensorName> n;
  for (const TensorName& t : llama_names())
    if (t.role < TensorRole::FfnGateInp) n.push_back(t);
    n.push_back({TensorRole::FfnGateInp, "model.layers.%d.mlp.gate.weight", "blk.%d.ffn_gate_inp.weight", true});
    n.push_back({TensorRole::FfnGateExps, "model.layers.%d.mlp.experts.%d.gate_proj.weight", "blk.%d.ffn_gate_exps.weight", true});
    n.push_back({TensorRole::FfnUpExps, "model.layers.%d.mlp.experts.%d.up_proj.weight", "blk.%d.ffn_up_exps.weight", true});
    n.push_back({TensorRole::FfnDownExps, "model.layers.%d.mlp.experts.%d.down_proj.weight", "blk.%d.ffn_down_exps.weight", true});
  return n;
}

// Qwen2-MoE and OLMoE name the router and experts under mlp.; Qwen2-MoE adds a gated shared expert.
const std::vector<TensorName>& qwen_moe_names(bool olmoe) {
  static const auto make = [](bool olmoe) {
    std::vector<TensorName> n = llama_with_mlp_experts();
    if (olmoe) {
      n.push_back({TensorRole::AttnQNorm, "model.layers.%d.self_attn.q_norm.weight", "blk.%d.attn_q_norm.weight", true});
      n.push_back({TensorRole::AttnKNorm, "model.layers.%d.self_attn.k_norm.weight", "blk.%d.attn_k_norm.weight", true});
    } else {
      n.push_back({TensorRole::FfnGateShexp, "model.layers.%d.mlp.shared_expert.gate_proj.weight", "blk.%d.ffn_gate_shexp.weight", true});
      n.push_back({TensorRole::FfnUpShexp, "model.layers.%d.mlp.shared_expert.up_proj.weight", "blk.%d.ffn_up_shexp.weight", true});
      n.push_back({TensorRole::FfnDownShexp, "model.layers.%d.mlp.shared_expert.down_proj.weight", "blk.%d.ffn_down_shexp.weight", true});
      n.push_back({TensorRole::FfnGateInpShexp, "model.layers.%d.mlp.shared_expert_gate.weight", "blk.%d.ffn_gate_inp_shexp.weight", true});
      n.push_back({TensorRole::FfnClusterGate, "model.layers.%d.mlp.cluster_gate.weight", "blk.%d.ffn_cluster_gate.weight", true});
      n.push_back({TensorRole::FfnClusterGateB, "model.layers.%d.mlp.cluster_gate.bias", "blk.%d.ffn_cluster_gate.bias", true});
    }
    return n;
  };
  static const std::vector<TensorName> qwen = make(false), olmo = make(true);
  return olmoe ? olmo : qwen;
}

// Gemma 3: four norms per block. Note HF's post_attention_layernorm is the attention output's
// norm here (GGUF post_attention_norm), not the FFN input norm it is in Llama.
const std::vector<TensorName>& gemma3_names() {
  static const std::vector<TensorName> names = [] {
    std::vector<TensorName> n;
    for (const TensorName& t : llama_names())
      if (t.role != TensorRole::FfnNorm) n.push_back(t);
    n.push_back({TensorRole::AttnQNorm, "model.layers.%d.self_attn.q_norm.weight", "blk.%d.attn_q_norm.weight", true});
    n.push_back({TensorRole::AttnKNorm, "model.layers.%d.self_attn.k_norm.weight", "blk.%d.attn_k_norm.weight", true});
    n.push_back({TensorRole::AttnPostNorm, "model.layers.%d.post_attention_layernorm.weight",
                 "blk.%d.post_attention_norm.weight", true});
    n.push_back({TensorRole::FfnNorm, "model.layers.%d.pre_feedforward_layernorm.weight", "blk.%d.ffn_norm.weight", true});
    n.push_back({TensorRole::FfnPostNorm, "model.layers.%d.post_feedforward_layernorm.weight",
                 "blk.%d.post_ffw_norm.weight", true});
    return n;
  }();
  return names;
}

ArchInfo gemma3_info() {
  ArchInfo a{"gemma3", false, false, true};
  a.qk_norm = a.post_norms = a.hf_norm_plus_one = a.embd_scale = true;
  a.ffn_act = FfnAct::GeluTanh;
  return a;
}

// DeepSeek (V1) MoE: llama attention, then dense FFNs in the leading layers and, after them,
// routed experts plus ungated shared experts (one FFN of n_expert_shared * n_ff_exp).
const std::vector<TensorName>& deepseek_names() {
  static const std::vector<TensorName> names = [] {
    std::vector<TensorName> n = llama_with_mlp_experts();
    n.push_back({TensorRole::FfnGateShexp, "model.layers.%d.mlp.shared_experts.gate_proj.weight", "blk.%d.ffn_gate_shexp.weight", true});
    n.push_back({TensorRole::FfnUpShexp, "model.layers.%d.mlp.shared_experts.up_proj.weight", "blk.%d.ffn_up_shexp.weight", true});
    n.push_back({TensorRole::FfnDownShexp, "model.layers.%d.mlp.shared_experts.down_proj.weight", "blk.%d.ffn_down_shexp.weight", true});
    return n;
  }();
  return names;
}

ArchInfo olmoe_info() {
  ArchInfo a{"olmoe", false, false, true};
  a.qk_norm_full = true;
  return a;
}

}  // namespace

const std::vector<TensorName>& tensor_names(const std::string& arch) {
  if (arch == "gemma3") return gemma3_names();
  if (arch == "qwen2moe") return qwen_moe_names(false);
  if (arch == "olmoe") return qwen_moe_names(true);
  if (arch == "deepseek") return deepseek_names();
  return llama_names();
}

const TensorName& tensor_name(const std::string& arch, TensorRole role) {
  for (auto& n : tensor_names(arch))
    if (n.role == role) return n;
  fail("architecture '", arch, "' has no tensor of role ", int(role));
}

std::string format_name(const char* pattern, int layer, int expert) {
  char buf[256];
  std::snprintf(buf, sizeof buf, pattern, layer, expert);
  return buf;
}

ArchInfo arch_from_hf(const std::string& model_type, bool attention_bias, const std::string& label) {
  if (model_type == "llama" || model_type == "mistral" || model_type == "smollm" || model_type == "smollm2")
    return {"llama", attention_bias, attention_bias, false};
  if (model_type == "qwen2") return {"qwen2", true, false, true};
  if (model_type == "gemma3_text") return gemma3_info();
  if (model_type == "mixtral") return {"llama", attention_bias, attention_bias, false};
  if (model_type == "qwen2_moe") return {"qwen2moe", true, false, true};
  if (model_type == "olmoe") return olmoe_info();
  fail(label, ": unknown architecture '", model_type,
       "' (supported: llama, mistral, qwen2, smollm, gemma3_text, mixtral, qwen2_moe, olmoe)");
}

ArchInfo arch_from_gguf(const std::string& arch, const std::string& label) {
  if (arch == "llama") return {"llama", false, false, false};  // biases are picked up if present
  if (arch == "qwen2") return {"qwen2", true, false, true};
  if (arch == "gemma3") return gemma3_info();
  if (arch == "qwen2moe") return {"qwen2moe", true, false, true};
  if (arch == "olmoe") return olmoe_info();
  if (arch == "deepseek") return {"deepseek", false, false, false};
  fail(label, ": unknown architecture '", arch, "' (supported: llama, qwen2, gemma3, qwen2moe, olmoe, deepseek)");
}

}  // namespace mf
