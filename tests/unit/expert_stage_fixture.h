// A small random SwiGLU FFN stack and calibration data for the expert stages' unit tests
// (expert_select, expert_compensate, expert_layout): no forward pass, only the FFN weights
// and statistics computed from random inputs, so each test runs in milliseconds.
#pragma once
#include <cmath>
#include <memory>
#include <random>
#include <vector>

#include "model/model.h"
#include "moe/expert.h"
#include "moe/sequential_refit.h"
#include "ops/ops.h"

namespace mf::test {

// n_layer layers of gate, up [n_ff, n_embd] and down [n_embd, n_ff] in `dtype` (F32 or Q8_0:
// then n_embd and n_ff are multiples of 32); no attention weights.
inline std::unique_ptr<Model> tiny_ffn_model(DType dtype = DType::F32, int n_layer = 2, int n_embd = 32, int n_ff = 64,
                                             uint32_t seed = 11) {
  auto m = std::make_unique<Model>();
  m->hp.n_layer = n_layer, m->hp.n_embd = n_embd, m->hp.n_ff = n_ff;
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.0f, 1.0f);
  auto matrix = [&](int64_t rows, int64_t cols, float scale) {
    std::vector<float> w(size_t(rows * cols));  // [rows, cols]
    for (float& v : w) v = scale * g(rng);
    auto bytes = std::make_shared<std::vector<uint8_t>>(size_t(rows) * row_bytes(dtype, cols));
    for (int64_t r = 0; r < rows; ++r)
      ops::quantize_row(dtype, w.data() + r * cols, bytes->data() + r * row_bytes(dtype, cols), cols);
    m->storage.push_back(bytes);
    return make_view(dtype, {rows, cols}, bytes->data());
  };
  m->w.layers.resize(size_t(n_layer));
  for (LayerWeights& l : m->w.layers) {
    l.ffn_gate = matrix(n_ff, n_embd, 0.3f);
    l.ffn_up = matrix(n_ff, n_embd, 0.3f);
    l.ffn_down = matrix(n_embd, n_ff, 0.2f);
  }
  return m;
}

// One layer's calibration tokens: inputs x [T, n_embd], activations a = silu(gate x) * (up x)
// [T, n_ff] with the layer's (dequantised) rows, and targets y [T, n_embd]: the dense FFN
// output down a, plus `drift` times another random map of x (what a sequential re-fit's
// target adds to it).
struct LayerTokens {
  int64_t T = 0;
  std::vector<float> x, a, y;
};

inline std::vector<float> dequantized(const TensorView& t) {
  std::vector<float> w(size_t(t.rows() * t.cols()));  // [rows, cols]
  for (int64_t r = 0; r < t.rows(); ++r) ops::dequantize_row(t.dtype, t.row(r), w.data() + r * t.cols(), t.cols());
  return w;
}

inline LayerTokens layer_tokens(const Model& m, int layer, int64_t T, uint32_t seed, float drift = 0.0f) {
  const int64_t E = m.hp.n_embd, F = m.hp.n_ff;
  const LayerWeights& l = m.w.layers[size_t(layer)];
  const std::vector<float> gate = dequantized(l.ffn_gate), up = dequantized(l.ffn_up), down = dequantized(l.ffn_down);
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::vector<float> other(size_t(E * E));  // [E, E]
  for (float& v : other) v = 0.2f * g(rng);
  LayerTokens t;
  t.T = T;
  t.x.resize(size_t(T * E)), t.a.resize(size_t(T * F)), t.y.resize(size_t(T * E));
  for (float& v : t.x) v = g(rng) + 0.3f;  // a non-zero mean, as after a norm's weights
  for (int64_t i = 0; i < T; ++i) {
    const float* x = &t.x[size_t(i * E)];  // [E]
    for (int64_t j = 0; j < F; ++j) {
      double zg = 0, zu = 0;
      for (int64_t c = 0; c < E; ++c) zg += gate[size_t(j * E + c)] * x[c], zu += up[size_t(j * E + c)] * x[c];
      t.a[size_t(i * F + j)] = float(zg / (1.0 + std::exp(-zg)) * zu);
    }
    for (int64_t r = 0; r < E; ++r) {
      double acc = 0;
      for (int64_t j = 0; j < F; ++j) acc += down[size_t(r * F + j)] * t.a[size_t(i * F + j)];
      for (int64_t c = 0; c < E; ++c) acc += drift * other[size_t(r * E + c)] * x[c];
      t.y[size_t(i * E + r)] = float(acc);
    }
  }
  return t;
}

// The statistics calibration would sum over these tokens.
inline LayerStats layer_stats(const Model& m, const LayerTokens& t) {
  const int64_t E = m.hp.n_embd, F = m.hp.n_ff;
  LayerStats s;
  s.resize(E, m.hp.n_embd_q(), F);
  for (int64_t i = 0; i < t.T; ++i) {
    for (int64_t c = 0; c < E; ++c) s.ffn_in_sq[size_t(c)] += t.x[size_t(i * E + c)] * t.x[size_t(i * E + c)];
    for (int64_t j = 0; j < F; ++j) {
      const float a = t.a[size_t(i * F + j)];
      s.act_sq[size_t(j)] += a * a, s.act_abs[size_t(j)] += std::fabs(a), s.act_sum[size_t(j)] += a;
    }
  }
  s.tokens = t.T;
  return s;
}

// Sum of a a^T [n_ff * n_ff].
inline std::vector<float> layer_gram(const Model& m, const LayerTokens& t) {
  const int64_t F = m.hp.n_ff;
  std::vector<double> g(size_t(F * F), 0.0);
  for (int64_t i = 0; i < t.T; ++i)
    for (int64_t p = 0; p < F; ++p)
      for (int64_t q = 0; q < F; ++q) g[size_t(p * F + q)] += double(t.a[size_t(i * F + p)]) * t.a[size_t(i * F + q)];
  return std::vector<float>(g.begin(), g.end());
}

// A sequential re-fit's moments of these tokens (a against the targets y).
inline RefitMoments layer_moments(const Model& m, const LayerTokens& t) {
  const int64_t E = m.hp.n_embd, F = m.hp.n_ff;
  RefitMoments mo;
  mo.gram = layer_gram(m, t);
  mo.sum = layer_stats(m, t).act_sum;
  std::vector<double> cross(size_t(E * F), 0.0), ys(size_t(E), 0.0);
  for (int64_t i = 0; i < t.T; ++i)
    for (int64_t r = 0; r < E; ++r) {
      const double y = t.y[size_t(i * E + r)];
      ys[size_t(r)] += y;
      for (int64_t j = 0; j < F; ++j) cross[size_t(r * F + j)] += y * t.a[size_t(i * F + j)];
    }
  mo.out_cross.assign(cross.begin(), cross.end());
  mo.out_sum.assign(ys.begin(), ys.end());
  mo.tokens = t.T;
  return mo;
}

// An expert spec over every layer of m with `T` random tokens per layer: stats, Gram matrices
// (kept in `gram`, which must outlive the spec) and the same stats for them.
inline ExpertSpec tiny_spec(const Model& m, int64_t T, uint32_t seed, std::vector<std::vector<float>>& gram) {
  ExpertSpec s;
  s.name = "tiny/0";
  gram.clear();
  for (int il = 0; il < m.hp.n_layer; ++il) {
    const LayerTokens t = layer_tokens(m, il, T, seed + uint32_t(il));
    s.stats.push_back(layer_stats(m, t));
    gram.push_back(layer_gram(m, t));
  }
  s.gram = &gram;
  s.gram_stats = s.stats;
  return s;
}

}  // namespace mf::test
