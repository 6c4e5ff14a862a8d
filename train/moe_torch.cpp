#include "train/moe_torch.h"

#include <cmath>
#include <limits>

namespace mf {

namespace F = torch::nn::functional;
using torch::indexing::Slice;

RouterChoice choose_experts(const torch::Tensor& logits, const TrainMoeConfig& c) {
  RouterChoice r;
  r.probs = torch::softmax(logits.to(torch::kFloat32), -1);  // [N, n_expert]
  const int64_t n_e = r.probs.size(1);
  if (c.top_p > 0) {
    auto [sorted, order] = r.probs.sort(-1, /*descending=*/true);  // [N, n_expert] each
    auto before = sorted.detach().cumsum(-1) - sorted.detach();     // probability mass ahead of each
    auto keep = before < c.top_p;                                    // the first is always kept
    if (c.max_experts > 0 && c.max_experts < n_e) keep.index_put_({Slice(), Slice(c.max_experts)}, false);
    r.selected = torch::zeros_like(keep).scatter(1, order, keep);    // back to expert order
  } else {
    auto top = std::get<1>(r.probs.topk(c.top_k, -1));                                // [N, k]
    r.selected = torch::zeros_like(r.probs, torch::kBool).scatter(1, top, true);      // [N, n_expert]
  }
  r.weights = r.probs * r.selected.to(torch::kFloat32);  // [N, n_expert]
  if (c.renormalize) r.weights = r.weights / r.weights.sum(-1, true);
  return r;
}

int64_t apply_capacity(RouterChoice& r, int64_t capacity) {
  if (capacity <= 0) return 0;
  auto rank = r.selected.to(torch::kInt64).cumsum(0);  // [N, n_expert] 1-based arrival order per expert
  auto keep = r.selected.logical_and(rank <= capacity);
  const int64_t dropped = r.selected.sum().item<int64_t>() - keep.sum().item<int64_t>();
  r.selected = keep;
  r.weights = r.weights * keep.to(torch::kFloat32);
  return dropped;
}

torch::Tensor load_balancing_loss(const RouterChoice& r, const RankSum& sum_over_ranks) {
  const int64_t n_e = r.probs.size(1);
  auto counts = r.selected.to(torch::kFloat32).sum(0);               // [n_expert]
  if (sum_over_ranks) counts = sum_over_ranks(counts);               // [n_expert] over every rank's tokens
  auto f = counts / counts.sum().clamp_min(1.0);                     // share of assignments (no gradient)
  auto p = r.probs.mean(0);                                          // [n_expert] mean probability
  return double(n_e) * (f * p).sum();
}

torch::Tensor router_z_loss(const torch::Tensor& logits) {
  return torch::logsumexp(logits.to(torch::kFloat32), -1).pow(2).mean();
}

torch::Tensor router_entropy(const torch::Tensor& probs) {
  return -(probs * probs.clamp_min(1e-12).log()).sum(-1).mean();
}

namespace {
torch::nn::Linear linear(int64_t in, int64_t out) { return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(false)); }
}  // namespace

ExpertMlpImpl::ExpertMlpImpl(int64_t n_embd, int64_t n_ff, bool mixtral_names) {
  const std::array<const char*, 3> names = expert_projection_names(mixtral_names);
  gate = register_module(names[0], linear(n_embd, n_ff));
  up = register_module(names[1], linear(n_embd, n_ff));
  down = register_module(names[2], linear(n_ff, n_embd));
}

ExpertMlpImpl::ExpertMlpImpl(std::shared_ptr<ExpertMlpImpl> shared, int64_t rank, double s, bool mixtral_names)
    : base(std::move(shared)), scale(s) {
  const std::array<const char*, 3> names = expert_projection_names(mixtral_names);
  const torch::nn::Linear* full[3] = {&base->gate, &base->up, &base->down};
  for (int i = 0; i < 3; ++i) {
    const int64_t n_out = (*full[i])->weight.size(0), n_in = (*full[i])->weight.size(1);
    const std::string name = names[size_t(i)];
    lora_a[size_t(i)] = register_parameter(name + "_lora_a", torch::empty({rank, n_in}));  // [r, n_in]
    torch::nn::init::kaiming_uniform_(lora_a[size_t(i)], std::sqrt(5.0));                  // as PEFT's LoRA
    lora_b[size_t(i)] = register_parameter(name + "_lora_b", torch::zeros({n_out, rank}));  // [n_out, r]
  }
}

torch::Tensor ExpertMlpImpl::forward(const torch::Tensor& x) {
  if (!base) return down(F::silu(gate(x)) * up(x));  // [n, E]
  auto project = [&](torch::nn::Linear& w, int i, const torch::Tensor& in) {  // [n, n_in] -> [n, n_out]
    return w(in) + scale * torch::matmul(torch::matmul(in, lora_a[size_t(i)].t()), lora_b[size_t(i)].t());
  };
  auto h = F::silu(project(base->gate, 0, x)) * project(base->up, 1, x);  // [n, n_ff]
  return project(base->down, 2, h);                                        // [n, E]
}

std::array<torch::Tensor, 3> ExpertMlpImpl::merged_weights() const {
  torch::NoGradGuard guard;
  if (!base) return {gate->weight.detach(), up->weight.detach(), down->weight.detach()};
  const torch::Tensor w[3] = {base->gate->weight, base->up->weight, base->down->weight};
  std::array<torch::Tensor, 3> out;
  for (size_t i = 0; i < 3; ++i) out[i] = w[i] + scale * torch::matmul(lora_b[i], lora_a[i]);  // [n_out, n_in]
  return out;
}

MoeFfnImpl::MoeFfnImpl(const TrainModelConfig& c) : cfg(c.moe) {
  const bool mixtral = cfg.n_ff_shared == 0;
  gate = register_module("gate", linear(c.n_embd, cfg.n_expert));
  experts = register_module("experts", torch::nn::ModuleList());
  if (cfg.lora_rank > 0) {
    expert_base = register_module("expert_base", ExpertMlp(c.n_embd, c.n_ff_expert(), mixtral));
    const double scale = cfg.lora_alpha / cfg.lora_rank;
    for (int e = 0; e < cfg.n_expert; ++e) experts->push_back(ExpertMlp(expert_base.ptr(), cfg.lora_rank, scale, mixtral));
  } else {
    for (int e = 0; e < cfg.n_expert; ++e) experts->push_back(ExpertMlp(c.n_embd, c.n_ff_expert(), mixtral));
  }
  if (!mixtral) {
    shared_expert = register_module("shared_expert", ExpertMlp(c.n_embd, cfg.n_ff_shared, false));
    shared_expert_gate = register_module("shared_expert_gate", linear(c.n_embd, 1));
  }
  if (cfg.clusters > 0) {
    cluster_gate = register_module("cluster_gate", torch::nn::Linear(torch::nn::LinearOptions(c.n_embd, cfg.clusters).bias(true)));
    cluster_active = register_parameter("cluster_active", torch::zeros({1}), /*requires_grad=*/false);
    for (auto& p : cluster_gate->parameters()) p.set_requires_grad(false);
  }
}

torch::Tensor MoeFfnImpl::forward(const torch::Tensor& x) {
  const int64_t E = x.size(-1);
  auto xs = x.reshape({-1, E});  // [N, E]
  n_tokens = xs.size(0);
  auto logits = gate(xs);  // [N, n_expert]
  if (clustered()) {  // only the token's cluster's experts may be chosen
    const int64_t group = cfg.n_expert / cfg.clusters;
    auto cluster = cluster_gate(xs).argmax(1);                                   // [N]
    auto owner = torch::arange(cfg.n_expert, torch::kInt64).div(group, "floor");  // [n_expert]
    logits = logits.masked_fill(owner.unsqueeze(0) != cluster.unsqueeze(1), -std::numeric_limits<float>::infinity());
  }
  RouterChoice r = choose_experts(logits, cfg);
  // Capacity applies in training only; inference is dropless, as the engine and transformers run.
  dropped = 0;
  if (is_training() && cfg.capacity_factor > 0) {
    const int64_t k = cfg.top_p > 0 ? (cfg.max_experts > 0 ? cfg.max_experts : cfg.n_expert) : cfg.top_k;
    dropped = apply_capacity(r, int64_t(std::ceil(cfg.capacity_factor * double(n_tokens * k) / cfg.n_expert)));
  }
  if (record) {
    last_input = xs.detach();
    last_selected = r.selected;
  }
  auto out = torch::zeros_like(xs);  // [N, E]
  for (int64_t e = 0; e < cfg.n_expert; ++e) {
    auto idx = r.selected.index({Slice(), e}).nonzero().squeeze(1);  // [n_e] tokens of expert e
    if (idx.numel() == 0) continue;
    auto w = r.weights.index({idx, e}).unsqueeze(1).to(xs.scalar_type());  // [n_e, 1]
    out = out.index_add(0, idx, experts[e]->as<ExpertMlp>()->forward(xs.index_select(0, idx)) * w);  // [N, E]
  }
  if (shared_expert) out = out + torch::sigmoid(shared_expert_gate(xs)) * shared_expert(xs);  // [N, E]
  const bool training_step = is_training() && torch::GradMode::is_enabled();
  aux_loss = load_balancing_loss(r, training_step ? sum_over_ranks : RankSum{});
  z_loss = router_z_loss(logits);
  entropy = router_entropy(r.probs);
  tokens_per_expert = r.selected.sum(0).to(torch::kInt64);
  experts_per_token = n_tokens ? double(r.selected.sum().item<int64_t>()) / double(n_tokens) : 0.0;
  return out.reshape(x.sizes());  // [B, T, E]
}

void MoeFfnImpl::upcycle_from(const torch::Tensor& gate_w, const torch::Tensor& up_w, const torch::Tensor& down_w) {
  torch::NoGradGuard guard;
  if (expert_base) {  // the shared base; each expert's update stays zero
    expert_base->gate->weight.copy_(gate_w);
    expert_base->up->weight.copy_(up_w);
    expert_base->down->weight.copy_(down_w);
    return;
  }
  for (auto& m : *experts) {
    auto* ex = m->as<ExpertMlp>();
    ex->gate->weight.copy_(gate_w);
    ex->up->weight.copy_(up_w);
    ex->down->weight.copy_(down_w);
  }
}

}  // namespace mf
