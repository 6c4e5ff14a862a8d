#include "ops/moe_routing.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <numeric>

namespace mf {

int RouteParams::max_per_token() const {
  if (top_p > 0) return std::clamp(max_experts > 0 ? max_experts : n_expert, 1, std::max(n_expert, 1));
  return top_k;
}

std::string RouteParams::check() const {
  if (n_expert < 1) return "no experts";
  if (top_p > 0 || top_p < 0) {
    if (!(top_p > 0.0f && top_p <= 1.0f)) return "expert top-p " + std::to_string(top_p) + " is outside (0, 1]";
    const int hi = max_experts > 0 ? max_experts : n_expert;
    if (min_experts < 1 || min_experts > hi)
      return "min-experts " + std::to_string(min_experts) + " must be in 1.." + std::to_string(hi);
    if (hi > n_expert) return "max-experts " + std::to_string(hi) + " is above the " + std::to_string(n_expert) + " experts";
    return "";
  }
  if (top_k < 1 || top_k > n_expert)
    return "experts used " + std::to_string(top_k) + " must be in 1.." + std::to_string(n_expert) + " (the model's experts)";
  return "";
}

void resize_routing(TokenRouting& r, int64_t n_tokens, int n_expert, int k_max) {
  r.n_tokens = n_tokens;
  r.n_expert = n_expert;
  r.k_max = k_max;
  r.probs.resize(size_t(n_tokens * n_expert));
  r.expert.assign(size_t(n_tokens * k_max), -1);
  r.weight.assign(size_t(n_tokens * k_max), 0.0f);
  r.n_used.assign(size_t(n_tokens), 0);
}

void route(const float* logits, int64_t n_tokens, const RouteParams& p, TokenRouting& out, int64_t row0) {
  assert(p.check().empty() && out.n_expert == p.n_expert && out.k_max >= p.max_per_token());
  const int n_e = p.n_expert;
  std::vector<int> order(size_t(n_e), 0);
  for (int64_t t = 0; t < n_tokens; ++t) {
    const int64_t row = row0 + t;
    float* prob = out.probs.data() + row * n_e;  // [n_expert]
    const float* lg = logits + t * n_e;          // [n_expert]
    const float mx = *std::max_element(lg, lg + n_e);
    float sum = 0;
    for (int e = 0; e < n_e; ++e) sum += prob[e] = std::exp(lg[e] - mx);
    for (int e = 0; e < n_e; ++e) prob[e] /= sum;
    // Decreasing probability; equal ones in increasing expert index.
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return prob[a] > prob[b]; });
    int k = p.top_k;
    if (p.top_p > 0) {
      const int hi = p.max_experts > 0 ? p.max_experts : n_e;
      float cum = 0;
      k = 0;
      while (k < hi && (k < p.min_experts || cum < p.top_p)) cum += prob[order[size_t(k++)]];
    }
    int32_t* ex = out.expert.data() + row * out.k_max;  // [k_max]
    float* w = out.weight.data() + row * out.k_max;     // [k_max]
    float chosen = 0;
    for (int j = 0; j < k; ++j) {
      ex[j] = order[size_t(j)];
      chosen += w[j] = prob[order[size_t(j)]];
    }
    if (p.renormalize)
      for (int j = 0; j < k; ++j) w[j] /= chosen;
    if (p.weight_scale != 1.0f)
      for (int j = 0; j < k; ++j) w[j] *= p.weight_scale;
    out.n_used[size_t(row)] = k;
  }
}

void dispatch(const TokenRouting& r, Dispatch& d) {
  const int n_e = r.n_expert;
  d.offsets.assign(size_t(n_e) + 1, 0);
  for (int64_t t = 0; t < r.n_tokens; ++t)
    for (int j = 0; j < r.n_used[size_t(t)]; ++j) ++d.offsets[size_t(r.expert[size_t(t * r.k_max + j)]) + 1];
  for (int e = 0; e < n_e; ++e) d.offsets[size_t(e) + 1] += d.offsets[size_t(e)];
  const int64_t n_assign = d.offsets[size_t(n_e)];
  d.token.resize(size_t(n_assign));
  d.weight.resize(size_t(n_assign));
  d.row_of.assign(size_t(r.n_tokens * r.k_max), -1);
  std::vector<int64_t> next(d.offsets.begin(), d.offsets.end() - 1);  // counting sort, stable in t
  for (int64_t t = 0; t < r.n_tokens; ++t)
    for (int j = 0; j < r.n_used[size_t(t)]; ++j) {
      const size_t tj = size_t(t * r.k_max + j);
      const int64_t row = next[size_t(r.expert[tj])]++;
      d.token[size_t(row)] = int32_t(t);
      d.weight[size_t(row)] = r.weight[tj];
      d.row_of[tj] = row;
    }
}

void gather_rows(const Dispatch& d, const float* x, float* xs, int64_t width) {
  for (int64_t a = 0; a < d.n_assign(); ++a)
    std::copy_n(x + int64_t(d.token[size_t(a)]) * width, width, xs + a * width);  // [width]
}

void combine(const TokenRouting& r, const Dispatch& d, const float* expert_out, float* y, int64_t width) {
  for (int64_t t = 0; t < r.n_tokens; ++t) {
    float* yt = y + t * width;  // [width]
    std::fill(yt, yt + width, 0.0f);
    for (int j = 0; j < r.n_used[size_t(t)]; ++j) {
      const size_t tj = size_t(t * r.k_max + j);
      const float w = r.weight[tj];
      const float* o = expert_out + d.row_of[tj] * width;  // [width]
      for (int64_t i = 0; i < width; ++i) yt[i] += w * o[i];
    }
  }
}

double LayerRoutingStats::load_imbalance() const {
  if (tokens_per_expert.empty()) return 0.0;
  int64_t total = 0, mx = 0;
  for (int64_t c : tokens_per_expert) total += c, mx = std::max(mx, c);
  return total ? double(mx) * double(tokens_per_expert.size()) / double(total) : 0.0;
}

void accumulate_stats(const TokenRouting& r, int64_t row0, int64_t n, LayerRoutingStats& s) {
  if (s.tokens_per_expert.size() != size_t(r.n_expert)) s.tokens_per_expert.assign(size_t(r.n_expert), 0);
  for (int64_t t = row0; t < row0 + n; ++t) {
    const int used = r.n_used[size_t(t)];
    for (int j = 0; j < used; ++j) ++s.tokens_per_expert[size_t(r.expert[size_t(t * r.k_max + j)])];
    double h = 0;
    for (int e = 0; e < r.n_expert; ++e) {
      const double q = r.probs[size_t(t * r.n_expert + e)];
      if (q > 0) h -= q * std::log(q);
    }
    s.sum_entropy += h;
    s.sum_experts_used += used;
    ++s.n_tokens;
  }
}

}  // namespace mf
