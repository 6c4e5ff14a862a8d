// The token-routed MoE FFN of one layer, by stages: route (router matmul, softmax, top-k or
// top-p), dispatch (assignments sorted by expert), run experts (each expert's rows as one
// grouped matmul: gate/up, activation, down), combine (weighted sum per token), plus the
// shared expert where the architecture has one. Decode (one row) reads only the chosen
// experts' weights.
#pragma once
#include <span>
#include <vector>

#include "core/thread_pool.h"
#include "model/model.h"
#include "ops/moe_routing.h"

namespace mf {

// Rows [row0, row0 + n) are routed with `params` (each sequence of a batch may route its own way).
struct RouteSegment {
  int64_t row0, n;
  const RouteParams* params;
};

// Buffers reused across calls (sized on demand).
struct MoeScratch {
  std::vector<float> logits;          // [n_tokens, n_expert]
  TokenRouting routing;
  Dispatch dispatch;
  std::vector<float> xs, gate, up, out;  // [n_assign, n_embd], [n_assign, n_ff_exp] x2, [n_assign, n_embd]
  std::vector<float> combined;           // [n_tokens, n_embd]
  // Decode's grouped matmuls over the chosen experts (reused, not reallocated per layer).
  std::vector<const TensorView*> group_w;
  std::vector<const float*> group_x;
  std::vector<float*> group_y;
  std::vector<float> shared_gate, shared_up, shared_out;  // [n_tokens, n_ff_shexp] x2, [n_tokens, n_embd]
};

struct MoeFfnArgs {
  const LayerWeights* layer;
  FfnAct act = FfnAct::SiLU;
  bool quantized_acts = true;  // matmul numerics (Session's Numerics)
  std::span<const RouteSegment> segments;  // cover [0, n_tokens) in order
};

// y [n_tokens, n_embd] = MoE-FFN(x [n_tokens, n_embd]) (y may be x); stats (may be null) gains these rows.
void moe_ffn_forward(const MoeFfnArgs& a, const float* x, int64_t n_tokens, int64_t n_embd, float* y,
                     MoeScratch& s, ThreadPool& pool, LayerRoutingStats* stats);

// The same result computed token by token with the scalar reference matmul (ref::matmul,
// f32 activations): the definition the fast path is tested against.
void moe_ffn_reference(const LayerWeights& l, FfnAct act, const RouteParams& p, const float* x, int64_t n_tokens,
                       int64_t n_embd, float* y);

}  // namespace mf
