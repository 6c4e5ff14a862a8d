#include "train/llama_torch.h"

#include <cmath>

#include "train/mode_torch.h"

namespace mf {

namespace F = torch::nn::functional;

RMSNormImpl::RMSNormImpl(int64_t n, double eps_) : eps(eps_) { weight = register_parameter("weight", torch::ones({n})); }

torch::Tensor RMSNormImpl::forward(const torch::Tensor& x) {
  return x * torch::rsqrt(x.pow(2).mean(-1, true) + eps) * weight;  // [B, T, E]
}

namespace {

torch::nn::Linear linear(int64_t in, int64_t out) { return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(false)); }

// Hugging Face rotate_half RoPE: pairs (i, i + head_dim/2).
torch::Tensor rope(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  int64_t half = x.size(-1) / 2;
  auto x1 = x.narrow(-1, 0, half), x2 = x.narrow(-1, half, half);
  return x * cos + torch::cat({-x2, x1}, -1) * sin;  // [B, H, T, D]
}

}  // namespace

torch::Tensor linear_lora(torch::nn::Linear& w, const LoraPair& lora, const torch::Tensor& x, bool training) {
  auto y = w(x);  // [..., n_out]
  if (!lora.a) return y;
  auto xd = lora.dropout > 0 ? F::dropout(x, F::DropoutFuncOptions().p(lora.dropout).training(training)) : x;
  // F::linear: the pair is const here, and a const ModuleHolder yields a const module.
  auto update = lora.scale * F::linear(F::linear(xd, lora.a->weight), lora.b->weight);  // [..., n_out]
  if (lora.gate.defined()) update = update * torch::sigmoid(torch::matmul(x, lora.gate)).unsqueeze(-1);  // [..., 1] gate
  return y + update;
}

AttentionImpl::AttentionImpl(const TrainModelConfig& c)
    : n_head(c.n_head), n_head_kv(c.n_head_kv), head_dim(c.n_embd / c.n_head) {
  q_proj = register_module("q_proj", linear(c.n_embd, n_head * head_dim));
  k_proj = register_module("k_proj", linear(c.n_embd, n_head_kv * head_dim));
  v_proj = register_module("v_proj", linear(c.n_embd, n_head_kv * head_dim));
  o_proj = register_module("o_proj", linear(n_head * head_dim, c.n_embd));
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  const int64_t B = x.size(0), T = x.size(1);
  const bool tr = is_training();
  auto q = linear_lora(q_proj, q_lora, x, tr).view({B, T, n_head, head_dim}).transpose(1, 2);     // [B, H, T, D]
  auto k = linear_lora(k_proj, k_lora, x, tr).view({B, T, n_head_kv, head_dim}).transpose(1, 2);  // [B, Hkv, T, D]
  auto v = linear_lora(v_proj, v_lora, x, tr).view({B, T, n_head_kv, head_dim}).transpose(1, 2);  // [B, Hkv, T, D]
  q = rope(q, cos, sin);
  k = rope(k, cos, sin);
  if (n_head != n_head_kv) {  // GQA: each KV head serves n_head/n_head_kv query heads
    k = k.repeat_interleave(n_head / n_head_kv, 1);  // [B, H, T, D]
    v = v.repeat_interleave(n_head / n_head_kv, 1);  // [B, H, T, D]
  }
  auto scores = torch::matmul(q, k.transpose(-2, -1)) / std::sqrt(double(head_dim));  // [B, H, T, T]
  auto mask = torch::ones({T, T}, torch::kBool).triu(1);                              // [T, T] future
  scores = scores.masked_fill(mask, -std::numeric_limits<float>::infinity());
  auto out = torch::matmul(torch::softmax(scores, -1), v);  // [B, H, T, D]
  return linear_lora(o_proj, o_lora, out.transpose(1, 2).reshape({B, T, n_head * head_dim}), tr);  // [B, T, E]
}

MlpImpl::MlpImpl(const TrainModelConfig& c) {
  gate_proj = register_module("gate_proj", linear(c.n_embd, c.n_ff));
  up_proj = register_module("up_proj", linear(c.n_embd, c.n_ff));
  down_proj = register_module("down_proj", linear(c.n_ff, c.n_embd));
}

torch::Tensor MlpImpl::forward(const torch::Tensor& x) {
  const bool tr = is_training();
  auto act = F::silu(linear_lora(gate_proj, gate_lora, x, tr)) * linear_lora(up_proj, up_lora, x, tr);  // [B, T, n_ff]
  return linear_lora(down_proj, down_lora, act, tr);                                                     // [B, T, E]
}

BlockImpl::BlockImpl(const TrainModelConfig& c) {
  input_layernorm = register_module("input_layernorm", RMSNorm(c.n_embd, c.rms_eps));
  self_attn = register_module("self_attn", Attention(c));
  post_attention_layernorm = register_module("post_attention_layernorm", RMSNorm(c.n_embd, c.rms_eps));
  if (c.moe.enabled())
    moe = register_module(c.moe.n_ff_shared > 0 ? "mlp" : "block_sparse_moe", MoeFfn(c));
  else
    mlp = register_module("mlp", Mlp(c));
}

torch::Tensor BlockImpl::forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  auto h = x + self_attn(input_layernorm(x), cos, sin);  // [B, T, E]
  auto hn = post_attention_layernorm(h);                 // [B, T, E]
  return h + (moe ? moe(hn) : mlp(hn));                  // [B, T, E]
}

LlamaBodyImpl::LlamaBodyImpl(const TrainModelConfig& c, int64_t n_vocab) {
  embed_tokens = register_module("embed_tokens", torch::nn::Embedding(n_vocab, c.n_embd));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int i = 0; i < c.n_layer; ++i) layers->push_back(Block(c));
  norm = register_module("norm", RMSNorm(c.n_embd, c.rms_eps));
}

LlamaLMImpl::LlamaLMImpl(const TrainModelConfig& c, int64_t n_vocab_) : cfg(c), n_vocab(n_vocab_) {
  model = register_module("model", LlamaBody(c, n_vocab));
  if (!c.tied_embeddings) lm_head = register_module("lm_head", linear(c.n_embd, n_vocab));
  int64_t head_dim = c.n_embd / c.n_head;
  auto i = torch::arange(0, head_dim / 2, torch::kFloat64);
  inv_freq = register_buffer("inv_freq", torch::pow(double(c.rope_theta), -2.0 * i / double(head_dim)).to(torch::kFloat32));
}

torch::Tensor LlamaLMImpl::forward(const torch::Tensor& tokens) {
  const int64_t T = tokens.size(1);
  auto pos = torch::arange(T, torch::kFloat32);                  // [T]
  auto freqs = torch::outer(pos, inv_freq);                      // [T, D/2]
  auto emb = torch::cat({freqs, freqs}, -1);                     // [T, D]
  auto cos = emb.cos(), sin = emb.sin();
  auto x = model->embed_tokens(tokens);                          // [B, T, E]
  if (!mode) {
    for (auto& layer : *model->layers) x = layer->as<Block>()->forward(x, cos, sin);
  } else {
    for (int b = 0; b < mode->n_block; ++b) {  // MoDE: each block's backbone layers, then the gated mix
      auto block_in = x;                                                              // [B, T, E]
      for (int il = mode->first_layer(b); il < mode->first_layer(b + 1); ++il)
        x = model->layers[size_t(il)]->as<Block>()->forward(x, cos, sin);            // [B, T, E]
      x = mode->mix(b, block_in, x, cos, sin);                                        // [B, T, E]
    }
  }
  x = model->norm(x);                                            // [B, T, E]
  if (lm_head) return lm_head(x);                                // [B, T, V]
  return torch::matmul(x, model->embed_tokens->weight.t());      // [B, T, V]
}

void LlamaLMImpl::init_weights(uint64_t seed) {
  torch::manual_seed(seed);
  torch::NoGradGuard guard;
  const double resid_std = 0.02 / std::sqrt(2.0 * cfg.n_layer);
  for (auto& p : named_parameters()) {
    const std::string& n = p.key();
    if (n.find("norm") != std::string::npos) p.value().fill_(1.0);
    else if (n.ends_with("cluster_active")) p.value().zero_();  // no cluster routing before a clustering finds structure
    else if (n.find("_lora_b") != std::string::npos) p.value().zero_();  // LoRA-like experts start as their base
    else if (n.find("_lora_a") != std::string::npos) torch::nn::init::kaiming_uniform_(p.value(), std::sqrt(5.0));
    else if (n.find("o_proj") != std::string::npos || n.find("down_proj") != std::string::npos ||
             n.find(".w2.") != std::string::npos)
      p.value().normal_(0, resid_std);
    else p.value().normal_(0, 0.02);
  }
}

std::vector<MoeFfn> LlamaLMImpl::moe_layers() const {
  std::vector<MoeFfn> out;
  for (auto& layer : *model->layers)
    if (auto& m = layer->as<Block>()->moe) out.push_back(m);
  return out;
}

torch::Tensor LlamaLMImpl::moe_aux_loss() const {
  torch::Tensor total = torch::zeros({});
  const TrainMoeConfig& c = cfg.moe;
  for (const MoeFfn& m : moe_layers()) {
    if (!m->aux_loss.defined()) continue;
    total = total + c.aux_loss_coef * m->aux_loss + c.z_loss_coef * m->z_loss;
    if (c.top_p > 0) total = total + c.dynamic_loss_coef * m->entropy;
  }
  return total;
}

}  // namespace mf
