// The token-routed MoE FFN in libtorch, with the parameter names of the Hugging Face layout
// it exports to: Mixtral (block_sparse_moe.gate, experts.N.w1/w3/w2) or, with a shared expert,
// Qwen2-MoE (mlp.gate, mlp.experts.N.gate_proj/up_proj/down_proj, mlp.shared_expert.*,
// mlp.shared_expert_gate). Routing: softmax, then top-k or dynamic top-p, optionally
// renormalised; dropless or with a capacity per expert. The forward leaves the auxiliary
// losses and routing counts of its last call for the trainer.
#pragma once
#include <array>
#include <functional>
#include <torch/torch.h>

#include "train/train_config.h"

namespace mf {

// Router decisions for n tokens (plain functions, tested alone).
struct RouterChoice {
  torch::Tensor probs;     // [N, n_expert] softmax of the logits (f32)
  torch::Tensor selected;  // [N, n_expert] bool: expert e runs token t
  torch::Tensor weights;   // [N, n_expert] combine weight (0 where not selected)
};
// Top-k (top_p == 0) or top-p (the fewest experts, in decreasing probability, whose
// probabilities sum to at least top_p; at most max_experts, 0: all), then renormalisation.
RouterChoice choose_experts(const torch::Tensor& logits, const TrainMoeConfig& c);
// Drops assignments beyond each expert's capacity, keeping the earliest tokens; returns
// the dropped count. capacity <= 0: nothing dropped.
int64_t apply_capacity(RouterChoice& r, int64_t capacity);
// Sums a tensor over the data-parallel ranks (null: one process).
using RankSum = std::function<torch::Tensor(const torch::Tensor&)>;
// n_expert * sum_e f_e P_e, f_e = share of the assignments that went to e, P_e = mean router
// probability of e (1 when perfectly balanced). With sum_over_ranks, f counts every rank's
// assignments: each rank's loss then uses its own P_e, and the ranks' mean gradient equals that
// of one process running all their rows (f carries no gradient).
torch::Tensor load_balancing_loss(const RouterChoice& r, const RankSum& sum_over_ranks = {});
// mean over tokens of logsumexp(logits)^2.
torch::Tensor router_z_loss(const torch::Tensor& logits);
// mean over tokens of the router distribution's entropy (nats).
torch::Tensor router_entropy(const torch::Tensor& probs);

// An expert's gate, up and down projection names in its Hugging Face layout: Mixtral's or
// Qwen2-MoE's.
inline std::array<const char*, 3> expert_projection_names(bool mixtral) {
  return mixtral ? std::array<const char*, 3>{"w1", "w3", "w2"} : std::array<const char*, 3>{"gate_proj", "up_proj", "down_proj"};
}

struct ExpertMlpImpl : torch::nn::Module {
  // mixtral_names: expert_projection_names(mixtral_names) name the projections.
  ExpertMlpImpl(int64_t n_embd, int64_t n_ff, bool mixtral_names);
  // A LoRA-like expert (MO-CTE's option): the layer's shared FFN `base` plus its own rank-r
  // update of each projection, W + scale B A (B starts at zero, so every expert starts as the
  // base). Its parameters are its A and B only; MoeFfn owns the base.
  ExpertMlpImpl(std::shared_ptr<ExpertMlpImpl> base, int64_t rank, double scale, bool mixtral_names);
  torch::Tensor forward(const torch::Tensor& x);  // [n, E] -> [n, E]
  // The weights the expert computes with: gate, up [n_ff, E] and down [E, n_ff] (a LoRA-like
  // expert's merged with its base), detached.
  std::array<torch::Tensor, 3> merged_weights() const;

  torch::nn::Linear gate{nullptr}, up{nullptr}, down{nullptr};  // a full expert's
  std::shared_ptr<ExpertMlpImpl> base;                           // a LoRA-like expert's
  std::array<torch::Tensor, 3> lora_a, lora_b;                   // gate, up, down: A [r, n_in], B [n_out, r]
  double scale = 0;
};
TORCH_MODULE(ExpertMlp);

struct MoeFfnImpl : torch::nn::Module {
  explicit MoeFfnImpl(const TrainModelConfig& c);
  torch::Tensor forward(const torch::Tensor& x);  // [B, T, E] -> [B, T, E]
  // Copies a dense FFN's weights into every expert (sparse upcycling); the router stays fresh.
  void upcycle_from(const torch::Tensor& gate_w, const torch::Tensor& up_w, const torch::Tensor& down_w);
  // The module holding the experts' full-size weights: the shared base of LoRA-like experts,
  // else expert 0 (every expert has its shapes).
  ExpertMlpImpl& weight_holder() { return expert_base ? *expert_base : *experts[0]->as<ExpertMlp>(); }

  TrainMoeConfig cfg;
  torch::nn::Linear gate{nullptr};  // the router, [n_expert, E]
  torch::nn::ModuleList experts;
  ExpertMlp expert_base{nullptr};  // LoRA-like experts (lora_rank > 0): the FFN they share
  ExpertMlp shared_expert{nullptr};
  torch::nn::Linear shared_expert_gate{nullptr};  // [1, E]
  // Cluster-oriented routing (MO-CTE), when clusters > 0: a token goes to cluster
  // argmax(cluster_gate x + b) and routes among that cluster's n_expert / clusters experts.
  // Not learned by gradient (set by the periodic clustering); cluster_active [1] is 0 until a
  // clustering shows structure.
  torch::nn::Linear cluster_gate{nullptr};  // [clusters, E] with bias
  torch::Tensor cluster_active;             // [1]
  bool clustered() const { return cluster_active.defined() && cluster_active.item<float>() > 0; }

  // Data-parallel training: the load-balancing loss's assignment shares over all ranks, so that
  // it equals one process's on the whole batch. Used by training forwards only (every rank runs
  // the same ones); evaluation and MO-CTE's sample forwards stay local.
  RankSum sum_over_ranks;
  // With record set, the forward keeps its input and routing (trainability checks).
  bool record = false;
  torch::Tensor last_input, last_selected;  // [N, E], [N, n_expert] bool

  // Of the last forward call.
  torch::Tensor aux_loss, z_loss, entropy;  // scalars (with grad)
  torch::Tensor tokens_per_expert;          // [n_expert] int64
  int64_t dropped = 0, n_tokens = 0;
  double experts_per_token = 0;
};
TORCH_MODULE(MoeFfn);

}  // namespace mf
