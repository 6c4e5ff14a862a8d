#include "model/moe_ffn.h"

#include <algorithm>
#include <cmath>

#include "ops/ops.h"

namespace mf {

namespace {

struct Matmuls {
  bool quantized_acts;
  ThreadPool& pool;
  void one(const TensorView& w, const float* x, float* y, int64_t n) const {
    if (quantized_acts)
      ops::matmul(w, x, y, n, pool);
    else
      ops::matmul_f32_acts(w, x, y, n, pool);
  }
  void group(std::span<const TensorView* const> ws, const float* x, std::span<float* const> ys, int64_t n) const {
    if (quantized_acts) return ops::matmul_group(ws, x, ys, n, pool);
    for (size_t i = 0; i < ws.size(); ++i) ops::matmul_f32_acts(*ws[i], x, ys[i], n, pool);
  }
  // One input per weight.
  void group(std::span<const TensorView* const> ws, std::span<const float* const> xs, std::span<float* const> ys,
             int64_t n) const {
    if (quantized_acts) return ops::matmul_group(ws, xs, ys, n, pool);
    for (size_t i = 0; i < ws.size(); ++i) ops::matmul_f32_acts(*ws[i], xs[i], ys[i], n, pool);
  }
};

void activate(FfnAct act, float* gate, const float* up, int64_t n) {
  if (act == FfnAct::GeluTanh)
    ops::geglu(gate, up, gate, n);
  else
    ops::swiglu(gate, up, gate, n);
}

float sigmoid(float z) { return 1.0f / (1.0f + std::exp(-z)); }

// Cluster-oriented routing: each token's logits outside its cluster's expert group become -inf.
// The cluster is argmax(gate x + b) in f32 (a few rows; scalar).
void mask_to_cluster(const LayerWeights& l, const float* x, int64_t n, int64_t E, float* logits) {
  const int64_t C = l.ffn_cluster_gate.shape[0], n_e = int64_t(l.experts.size()), group = n_e / C;
  const float* w = l.ffn_cluster_gate.f32();   // [C, E]
  const float* b = l.ffn_cluster_gate_b.f32();  // [C]
  for (int64_t t = 0; t < n; ++t) {
    int64_t best = 0;
    double best_v = -INFINITY;
    for (int64_t c = 0; c < C; ++c) {
      double v = b[c];
      for (int64_t i = 0; i < E; ++i) v += double(w[c * E + i]) * x[t * E + i];
      if (v > best_v) best_v = v, best = c;  // ties: the lower cluster, as torch's argmax
    }
    for (int64_t e = 0; e < n_e; ++e)
      if (e / group != best) logits[t * n_e + e] = -INFINITY;
  }
}

// Adds the shared expert, scaled per token by sigmoid(x . w_gate) when gated, to y.
void add_shared_expert(const LayerWeights& l, FfnAct act, const Matmuls& mm, const float* x, int64_t n, int64_t E,
                       float* y, MoeScratch& s) {
  const int64_t F = l.shared.gate.shape[0];
  s.shared_gate.resize(size_t(n * F));
  s.shared_up.resize(size_t(n * F));
  s.shared_out.resize(size_t(n * E));
  const TensorView* ws[] = {&l.shared.gate, &l.shared.up};
  float* ys[] = {s.shared_gate.data(), s.shared_up.data()};  // [n, F] each
  mm.group(ws, x, ys, n);
  activate(act, s.shared_gate.data(), s.shared_up.data(), n * F);  // [n, F]
  mm.one(l.shared.down, s.shared_gate.data(), s.shared_out.data(), n);  // [n, E]
  for (int64_t t = 0; t < n; ++t) {
    float g = 1.0f;
    if (l.ffn_gate_inp_shexp.data) {
      const float* w = l.ffn_gate_inp_shexp.f32();  // [E]
      float z = 0;
      for (int64_t i = 0; i < E; ++i) z += x[t * E + i] * w[i];
      g = sigmoid(z);
    }
    for (int64_t i = 0; i < E; ++i) y[t * E + i] += g * s.shared_out[size_t(t * E + i)];
  }
}

}  // namespace

void moe_ffn_forward(const MoeFfnArgs& a, const float* x, int64_t n, int64_t E, float* y, MoeScratch& s,
                     ThreadPool& pool, LayerRoutingStats* stats) {
  const LayerWeights& l = *a.layer;
  const Matmuls mm{a.quantized_acts, pool};
  const int n_e = int(l.experts.size());
  const int64_t F = l.experts[0].gate.shape[0];  // n_ff_exp

  // Route.
  s.logits.resize(size_t(n * n_e));
  mm.one(l.ffn_gate_inp, x, s.logits.data(), n);  // [n, n_expert]
  if (l.ffn_cluster_gate.data) mask_to_cluster(l, x, n, E, s.logits.data());
  int k_max = 1;
  for (const RouteSegment& seg : a.segments) k_max = std::max(k_max, seg.params->max_per_token());
  resize_routing(s.routing, n, n_e, k_max);
  for (const RouteSegment& seg : a.segments)
    route(s.logits.data() + seg.row0 * n_e, seg.n, *seg.params, s.routing, seg.row0);
  if (stats) accumulate_stats(s.routing, 0, n, *stats);

  // Dispatch.
  dispatch(s.routing, s.dispatch);
  const Dispatch& d = s.dispatch;
  const int64_t n_assign = d.n_assign();
  s.xs.resize(size_t(n_assign * E));
  s.gate.resize(size_t(n_assign * F));
  s.up.resize(size_t(n_assign * F));
  s.out.resize(size_t(n_assign * E));
  gather_rows(d, x, s.xs.data(), E);  // [n_assign, E]

  // Run experts: gate and up of every chosen expert. One row (decode): all experts share the
  // input, so their gate/up products go in one parallel pass.
  if (n == 1) {
    s.group_w.clear();
    s.group_y.clear();
    for (int e = 0; e < n_e; ++e)
      for (int64_t r = d.offsets[size_t(e)]; r < d.offsets[size_t(e) + 1]; ++r) {
        s.group_w.insert(s.group_w.end(), {&l.experts[size_t(e)].gate, &l.experts[size_t(e)].up});
        s.group_y.insert(s.group_y.end(), {s.gate.data() + r * F, s.up.data() + r * F});  // [1, F] each
      }
    mm.group(s.group_w, x, s.group_y, 1);
  } else {
    for (int e = 0; e < n_e; ++e) {
      const int64_t r0 = d.offsets[size_t(e)], c = d.offsets[size_t(e) + 1] - r0;
      if (c == 0) continue;
      const TensorView* ws[] = {&l.experts[size_t(e)].gate, &l.experts[size_t(e)].up};
      float* ys[] = {s.gate.data() + r0 * F, s.up.data() + r0 * F};  // [c, F] each
      mm.group(ws, s.xs.data() + r0 * E, ys, c);
    }
  }
  activate(a.act, s.gate.data(), s.up.data(), n_assign * F);  // [n_assign, F]
  // Down projections: one parallel pass over every chosen expert in decode, else per expert.
  if (n == 1) {
    s.group_w.clear();
    s.group_x.clear();
    s.group_y.clear();
    for (int e = 0; e < n_e; ++e)
      for (int64_t r = d.offsets[size_t(e)]; r < d.offsets[size_t(e) + 1]; ++r) {
        s.group_w.push_back(&l.experts[size_t(e)].down);
        s.group_x.push_back(s.gate.data() + r * F);  // [1, F]
        s.group_y.push_back(s.out.data() + r * E);   // [1, E]
      }
    mm.group(s.group_w, s.group_x, s.group_y, 1);
  } else {
    for (int e = 0; e < n_e; ++e) {
      const int64_t r0 = d.offsets[size_t(e)], c = d.offsets[size_t(e) + 1] - r0;
      if (c > 0) mm.one(l.experts[size_t(e)].down, s.gate.data() + r0 * F, s.out.data() + r0 * E, c);  // [c, E]
    }
  }

  // Combine, then the shared expert (into a buffer of its own: y may alias x).
  s.combined.resize(size_t(n * E));
  combine(s.routing, d, s.out.data(), s.combined.data(), E);  // [n, E]
  if (l.shared.gate.data) add_shared_expert(l, a.act, mm, x, n, E, s.combined.data(), s);
  std::copy(s.combined.begin(), s.combined.end(), y);  // [n, E]
}

namespace {
// out [E] = down(act(gate x) * up x) for one token, with the scalar reference ops.
void reference_expert(const ExpertWeights& ex, FfnAct act, const float* xt, float* out) {
  const size_t F = size_t(ex.gate.shape[0]);
  std::vector<float> g(F), u(F);
  ref::matmul(ex.gate, xt, g.data(), 1);  // [F]
  ref::matmul(ex.up, xt, u.data(), 1);    // [F]
  if (act == FfnAct::GeluTanh)
    ref::geglu(g.data(), u.data(), g.data(), int64_t(F));
  else
    ref::swiglu(g.data(), u.data(), g.data(), int64_t(F));
  ref::matmul(ex.down, g.data(), out, 1);  // [E]
}
}  // namespace

void moe_ffn_reference(const LayerWeights& l, FfnAct act, const RouteParams& p, const float* x, int64_t n, int64_t E,
                       float* y) {
  const size_t n_e = l.experts.size();
  std::vector<float> prob(n_e), o(static_cast<size_t>(E));
  std::vector<int> order(n_e);
  for (int64_t t = 0; t < n; ++t) {
    const float* xt = x + t * E;  // [E]
    float* yt = y + t * E;        // [E]
    std::fill(yt, yt + E, 0.0f);
    ref::matmul(l.ffn_gate_inp, xt, prob.data(), 1);  // [n_expert] logits
    if (l.ffn_cluster_gate.data) mask_to_cluster(l, xt, 1, E, prob.data());
    ref::softmax(prob.data(), int64_t(n_e));
    // Experts in decreasing probability (lower index first on ties).
    for (size_t e = 0; e < n_e; ++e) order[e] = int(e);
    std::stable_sort(order.begin(), order.end(), [&](int i, int j) { return prob[size_t(i)] > prob[size_t(j)]; });
    int k = p.top_k;
    if (p.top_p > 0) {
      const int hi = p.max_experts > 0 ? p.max_experts : int(n_e);
      double cum = 0;
      for (k = 0; k < hi && (k < p.min_experts || cum < p.top_p); ++k) cum += prob[size_t(order[size_t(k)])];
    }
    double chosen = 0;
    for (int j = 0; j < k; ++j) chosen += prob[size_t(order[size_t(j)])];
    for (int j = 0; j < k; ++j) {
      reference_expert(l.experts[size_t(order[size_t(j)])], act, xt, o.data());
      const float w = prob[size_t(order[size_t(j)])] / (p.renormalize ? float(chosen) : 1.0f) * p.weight_scale;
      for (int64_t i = 0; i < E; ++i) yt[i] += w * o[size_t(i)];
    }
    if (l.shared.gate.data) {
      reference_expert(l.shared, act, xt, o.data());
      float gate = 1.0f;
      if (l.ffn_gate_inp_shexp.data) {
        float z = 0;
        for (int64_t i = 0; i < E; ++i) z += xt[i] * l.ffn_gate_inp_shexp.f32()[i];
        gate = 1.0f / (1.0f + std::exp(-z));
      }
      for (int64_t i = 0; i < E; ++i) yt[i] += gate * o[size_t(i)];
    }
  }
}

}  // namespace mf
