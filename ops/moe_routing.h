// Token-routed Mixture-of-Experts by stages (megablocks / torchtitan shape):
//   route    router logits -> per token, the chosen experts and their weights
//   dispatch routing -> assignments sorted by expert (each expert's rows contiguous)
//   (run experts: model/moe_ffn.cpp, one grouped matmul per expert over its rows)
//   combine  expert outputs -> per token, the weighted sum in the token's choice order
// Each stage is a plain function of its inputs: deterministic (ties go to the lower expert
// index), no global state. Routing statistics are accumulated by the caller (accumulate_stats).
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace mf {

// How the experts of one token are chosen from its router probabilities.
struct RouteParams {
  int n_expert = 0;
  int top_k = 1;             // experts per token (top-k mode)
  float top_p = 0.0f;        // > 0: dynamic top-p, the fewest experts whose probability sum reaches top_p
  int min_experts = 1;       // top-p floor
  int max_experts = 0;       // top-p ceiling (0: n_expert)
  bool renormalize = false;  // chosen weights divided by their sum (Mixtral; Qwen2-MoE's norm_topk_prob)
  float weight_scale = 1.0f; // then multiplied by this (DeepSeek's routed scaling)
  // The most experts one token can get under these settings.
  int max_per_token() const;
  // Empty when the settings are usable, else what is wrong ("top-k 9 is above the 8 experts").
  std::string check() const;
};

// The experts chosen for n_tokens tokens; token t's choices are expert[t*k_max .. + n_used[t]),
// in decreasing probability.
struct TokenRouting {
  int64_t n_tokens = 0;
  int n_expert = 0;
  int k_max = 0;                // stride of expert/weight
  std::vector<float> probs;     // [n_tokens, n_expert] softmax of the router logits
  std::vector<int32_t> expert;  // [n_tokens, k_max]
  std::vector<float> weight;    // [n_tokens, k_max] combine weights
  std::vector<int32_t> n_used;  // [n_tokens]
};

// Softmax of logits [n_tokens, n_expert], then top-k or top-p selection, written into
// rows [row0, row0 + n_tokens) of out (out sized by the caller with resize_routing).
void route(const float* logits, int64_t n_tokens, const RouteParams& p, TokenRouting& out, int64_t row0 = 0);
void resize_routing(TokenRouting& r, int64_t n_tokens, int n_expert, int k_max);

// Assignments (token, choice) sorted by expert, then by token: expert e's rows are
// [offsets[e], offsets[e+1]).
struct Dispatch {
  std::vector<int64_t> offsets;  // [n_expert + 1]
  std::vector<int32_t> token;    // [n_assign] source token of each row
  std::vector<float> weight;     // [n_assign] its combine weight
  std::vector<int64_t> row_of;   // [n_tokens, k_max] row of token t's j-th choice (-1: none)
  int64_t n_assign() const { return int64_t(token.size()); }
};
void dispatch(const TokenRouting& r, Dispatch& out);

// Gathers x [n_tokens, width] into xs [n_assign, width] in dispatch order.
void gather_rows(const Dispatch& d, const float* x, float* xs, int64_t width);

// y[t] = sum over token t's choices j (in choice order) of weight * expert_out[row_of(t, j)];
// expert_out [n_assign, width], y [n_tokens, width] overwritten.
void combine(const TokenRouting& r, const Dispatch& d, const float* expert_out, float* y, int64_t width);

// TokenRouting statistics of one layer, accumulated over forward steps.
struct LayerRoutingStats {
  std::vector<int64_t> tokens_per_expert;  // [n_expert]
  int64_t n_tokens = 0;
  double sum_entropy = 0;       // nats, of the full router distribution
  double sum_experts_used = 0;  // per token
  double load_imbalance() const;  // max over mean of tokens_per_expert (1 = balanced; 0 if none)
  double mean_entropy() const { return n_tokens ? sum_entropy / double(n_tokens) : 0.0; }
  double mean_experts_used() const { return n_tokens ? sum_experts_used / double(n_tokens) : 0.0; }
};
// Adds rows [row0, row0 + n) of a routing to the statistics.
void accumulate_stats(const TokenRouting& r, int64_t row0, int64_t n, LayerRoutingStats& s);

}  // namespace mf
