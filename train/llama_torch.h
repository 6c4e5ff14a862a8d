// The Llama architecture in libtorch, with parameter names equal to the Hugging Face names
// the engine loads (model.layers.N.self_attn.q_proj.weight, ...), so export is a rename-free
// dump and a test can compare the two forwards.
#pragma once
#include <torch/torch.h>

#include "train/moe_torch.h"
#include "train/train_config.h"

namespace mf {

struct ModeImpl;  // train/mode_torch.h

struct RMSNormImpl : torch::nn::Module {
  RMSNormImpl(int64_t n, double eps);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor weight;
  double eps;
};
TORCH_MODULE(RMSNorm);

// A LoRA update beside a frozen linear map W (train/lora_torch.h attaches it): y = W x +
// scale * B A dropout(x). A and B register under W's module as lora_A and lora_B, so their
// names are PEFT's (model.layers.0.self_attn.q_proj.lora_A.weight).
struct LoraPair {
  torch::nn::Linear a{nullptr}, b{nullptr};  // [r, n_in], [n_out, r]
  double scale = 0.0, dropout = 0.0;
  torch::Tensor gate;  // [n_in] PHATGOOSE gate (registered as lora_gate), or undefined: y = W x + sigmoid(g . x) scale B A x
};
// W x, plus the LoRA update when the pair is attached.
torch::Tensor linear_lora(torch::nn::Linear& w, const LoraPair& lora, const torch::Tensor& x, bool training);

struct AttentionImpl : torch::nn::Module {
  AttentionImpl(const TrainModelConfig& c);
  // x: [B, T, E]; cos, sin: [T, head_dim]
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);
  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
  LoraPair q_lora, k_lora, v_lora, o_lora;
  int64_t n_head, n_head_kv, head_dim;
};
TORCH_MODULE(Attention);

struct MlpImpl : torch::nn::Module {
  MlpImpl(const TrainModelConfig& c);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
  LoraPair gate_lora, up_lora, down_lora;
};
TORCH_MODULE(Mlp);

struct BlockImpl : torch::nn::Module {
  BlockImpl(const TrainModelConfig& c);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);
  RMSNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
  Attention self_attn{nullptr};
  Mlp mlp{nullptr};     // dense FFN, or
  MoeFfn moe{nullptr};  // token-routed MoE FFN (registered as block_sparse_moe, or mlp with a shared expert)
};
TORCH_MODULE(Block);

struct LlamaBodyImpl : torch::nn::Module {
  LlamaBodyImpl(const TrainModelConfig& c, int64_t n_vocab);
  torch::nn::Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers;
  RMSNorm norm{nullptr};
};
TORCH_MODULE(LlamaBody);

struct LlamaLMImpl : torch::nn::Module {
  LlamaLMImpl(const TrainModelConfig& c, int64_t n_vocab);
  // tokens: [B, T] int64 -> logits [B, T, n_vocab]
  torch::Tensor forward(const torch::Tensor& tokens);
  // GPT-2-style init: N(0, 0.02), residual output projections scaled by 1/sqrt(2 n_layer).
  void init_weights(uint64_t seed);
  // The MoE layers of the last forward: their auxiliary losses weighted by the config's
  // coefficients and summed (0 for a dense model).
  torch::Tensor moe_aux_loss() const;
  std::vector<MoeFfn> moe_layers() const;
  TrainModelConfig cfg;
  int64_t n_vocab;
  LlamaBody model{nullptr};
  torch::nn::Linear lm_head{nullptr};  // null when tied to model.embed_tokens
  torch::Tensor inv_freq;              // [head_dim/2], buffer
  std::shared_ptr<ModeImpl> mode;      // MoDE experts and gates beside the layers (attach_mode), or null
};
TORCH_MODULE(LlamaLM);

}  // namespace mf
