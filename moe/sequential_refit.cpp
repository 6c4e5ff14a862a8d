#include "moe/sequential_refit.h"

#include <algorithm>
#include <string_view>

#include <Eigen/Core>

#include "core/error.h"
#include "model/session.h"

namespace mf {

namespace {

// Thrown by the hook once it has the layer's activations: the rest of the forward pass (the
// layers above and the logits) is not needed. The session is reset before its next use.
struct StopForward {};

// Runs `tokens` through `s` and copies the hook points `names` at `layer` into rows
// [n, width] each, stopping the pass once the last of them has all its rows.
void capture(Session& s, std::span<const int32_t> tokens, int layer, const std::vector<std::string_view>& names,
             std::vector<std::vector<float>*> rows) {
  const int64_t n = int64_t(tokens.size());
  std::vector<int64_t> got(names.size(), 0);
  s.reset();
  s.set_hook([&](const HookEvent& e) {
    if (e.layer != layer) return;
    for (size_t i = 0; i < names.size(); ++i) {
      if (e.name != names[i]) continue;
      rows[i]->resize(size_t(n * e.width));
      std::copy_n(e.data, e.n_tokens * e.width, rows[i]->begin() + got[i] * e.width);
      got[i] += e.n_tokens;
      if (i + 1 == names.size() && got[i] == n) throw StopForward{};
    }
  });
  try {
    s.eval(tokens, false);
  } catch (const StopForward&) {
  }
  s.set_hook({});
  s.reset();
  for (size_t i = 0; i < names.size(); ++i)
    if (got[i] != n) fail("sequential re-fit: the forward pass reported no '", names[i], "' for layer ", layer);
}

}  // namespace

int64_t RefitWindows::tokens() const {
  int64_t n = 0;
  if (!masks.empty()) {
    for (const auto& m : masks) n += std::count(m.begin(), m.end(), uint8_t(1));
    return n;
  }
  for (const auto& w : windows) n += int64_t(w.size());
  return n;
}

RefitWindows refit_windows(const std::vector<std::span<const int32_t>>& streams, int64_t budget, int64_t window) {
  if (budget < 1 || window < 2) fail("sequential re-fit: token budget ", budget, " and window ", window, " must be positive");
  int64_t total = 0;
  for (const auto& s : streams) total += int64_t(s.size());
  if (total == 0) fail("sequential re-fit: no calibration tokens");
  RefitWindows r;
  for (const auto& s : streams) {
    const int64_t n = int64_t(s.size());
    if (n == 0) continue;
    // This stream's share of the budget, in whole windows spaced evenly over it.
    const int64_t share = std::min(n, std::max<int64_t>(1, budget * n / total));
    const int64_t w = std::min(window, n);
    const int64_t count = std::max<int64_t>(1, share / w);
    for (int64_t i = 0; i < count; ++i) {
      const int64_t start = count > 1 ? (n - w) * i / (count - 1) : 0;
      r.windows.push_back(s.subspan(size_t(start), size_t(w)));
    }
  }
  return r;
}

RefitWindows masked_refit_windows(std::span<const int32_t> stream, const std::vector<uint8_t>& counted, int64_t budget,
                                  int64_t window) {
  if (budget < 1 || window < 2) fail("sequential re-fit: token budget ", budget, " and window ", window, " must be positive");
  if (counted.size() != stream.size())
    fail("sequential re-fit: a mask of ", counted.size(), " tokens for a stream of ", stream.size());
  const int64_t n = int64_t(stream.size());
  std::vector<int64_t> starts;  // of the windows with a counted token
  int64_t total = 0;
  for (int64_t b = 0; b < n; b += window) {
    const int64_t c = std::count(counted.begin() + b, counted.begin() + std::min(n, b + window), uint8_t(1));
    if (c == 0) continue;
    starts.push_back(b), total += c;
  }
  if (total == 0) fail("sequential re-fit: no calibration tokens");
  // Every `step`-th of them (fractional, so the kept ones spread over the whole stream).
  const double step = std::max(1.0, double(total) / double(budget));
  RefitWindows r;
  for (double i = 0; i < double(starts.size()); i += step) {
    // Tokens after the last counted one cannot change it (causal attention): the window stops there.
    const int64_t b = starts[size_t(i)];
    int64_t e = std::min(n, b + window);
    while (!counted[size_t(e - 1)]) --e;
    r.windows.push_back(stream.subspan(size_t(b), size_t(e - b)));
    r.masks.emplace_back(counted.begin() + b, counted.begin() + e);
  }
  return r;
}

RefitMoments collect_refit_moments(const Model& model, const std::vector<LayerWeights>& expert_layers, int layer,
                                   const RefitWindows& windows, RefitTarget target, ThreadPool& pool) {
  const int64_t F = model.hp.n_ff, E = model.hp.n_embd;
  if (expert_layers.at(size_t(layer)).ffn_gate.shape[0] != F)
    fail("sequential re-fit: layer ", layer, " of the expert is not the dense ", F, " neurons wide");
  int64_t longest = 0;
  for (const auto& w : windows.windows) longest = std::max<int64_t>(longest, int64_t(w.size()));
  if (longest == 0) fail("sequential re-fit: no token windows");
  Session dense(model, int(longest), pool), expert(model, int(longest), pool);
  expert.set_layers(&expert_layers);
  using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  Eigen::MatrixXd gram = Eigen::MatrixXd::Zero(F, F), out_cross = Eigen::MatrixXd::Zero(E, F);  // [F, F], [E, F]
  Eigen::VectorXd sum = Eigen::VectorXd::Zero(F), out_sum = Eigen::VectorXd::Zero(E);           // [F], [E]
  std::vector<float> a_rows, resid_rows, bd_rows;  // [n, F], [n, E], [n, E]: one window
  // The stream y subtracts from the dense block output: the expert's (Residual) or the dense
  // model's own (Ffn) stream entering the FFN.
  const bool residual = target == RefitTarget::Residual;
  RefitMoments m;
  if (!windows.masks.empty() && windows.masks.size() != windows.windows.size())
    fail("sequential re-fit: ", windows.masks.size(), " masks for ", windows.windows.size(), " windows");
  for (size_t wi = 0; wi < windows.windows.size(); ++wi) {
    const std::span<const int32_t> w = windows.windows[wi];
    if (residual) {
      capture(expert, w, layer, {"ffn_resid", "ffn_gate_act"}, {&resid_rows, &a_rows});
      capture(dense, w, layer, {"block_out"}, {&bd_rows});
    } else {
      capture(expert, w, layer, {"ffn_gate_act"}, {&a_rows});
      capture(dense, w, layer, {"ffn_resid", "block_out"}, {&resid_rows, &bd_rows});
    }
    int64_t n = int64_t(w.size());
    if (!windows.masks.empty()) {  // keep the counted tokens' rows only, in place
      const std::vector<uint8_t>& mask = windows.masks[wi];
      int64_t kept = 0;
      for (int64_t t = 0; t < n; ++t) {
        if (!mask[size_t(t)]) continue;
        if (kept != t) {
          std::copy_n(a_rows.begin() + t * F, F, a_rows.begin() + kept * F);
          std::copy_n(bd_rows.begin() + t * E, E, bd_rows.begin() + kept * E);
          std::copy_n(resid_rows.begin() + t * E, E, resid_rows.begin() + kept * E);
        }
        ++kept;
      }
      n = kept;
    }
    Eigen::Map<const RowMat> a(a_rows.data(), n, F);  // [n, F]
    Eigen::Map<const RowMat> bd(bd_rows.data(), n, E), resid(resid_rows.data(), n, E);  // [n, E] each
    const RowMat y = bd - resid;  // [n, E]
    // f32 products per window (at most a few hundred rows), summed in f64.
    gram.noalias() += (a.transpose() * a).cast<double>();       // [F, F]
    out_cross.noalias() += (y.transpose() * a).cast<double>();  // [E, F]
    sum += a.colwise().sum().transpose().cast<double>();
    out_sum += y.colwise().sum().transpose().cast<double>();
    m.tokens += n;
  }
  m.gram.resize(size_t(F * F));
  m.out_cross.resize(size_t(E * F));
  Eigen::Map<RowMat>(m.gram.data(), F, F) = gram.cast<float>();
  Eigen::Map<RowMat>(m.out_cross.data(), E, F) = out_cross.cast<float>();
  m.sum.resize(size_t(F));
  m.out_sum.resize(size_t(E));
  Eigen::Map<Eigen::VectorXf>(m.sum.data(), F) = sum.cast<float>();
  Eigen::Map<Eigen::VectorXf>(m.out_sum.data(), E) = out_sum.cast<float>();
  return m;
}

}  // namespace mf
