#include "moe/sequential_refit.h"

#include <algorithm>

#include <Eigen/Core>

#include "core/error.h"
#include "model/session.h"

namespace mf {

namespace {

// Thrown by the hook once it has the layer's activations: the rest of the forward pass (the
// layers above and the logits) is not needed. The session is reset before its next use.
struct StopForward {};

// Runs `tokens` through `s` and copies the FFN activations at `layer` into rows [n, n_ff].
void capture(Session& s, std::span<const int32_t> tokens, int layer, int64_t n_ff, std::vector<float>& rows) {
  rows.resize(tokens.size() * size_t(n_ff));
  int64_t got = 0;
  s.reset();
  s.set_hook([&](const HookEvent& e) {
    if (e.layer != layer || e.name != "ffn_gate_act") return;
    if (e.width != n_ff) fail("sequential re-fit: layer ", layer, " has ", e.width, " FFN neurons, expected the dense ", n_ff);
    std::copy_n(e.data, e.n_tokens * e.width, rows.begin() + got * n_ff);
    got += e.n_tokens;
    if (got == int64_t(tokens.size())) throw StopForward{};
  });
  try {
    s.eval(tokens, false);
  } catch (const StopForward&) {
  }
  s.set_hook({});
  s.reset();
  if (got != int64_t(tokens.size())) fail("sequential re-fit: the forward pass reported no activations for layer ", layer);
}

}  // namespace

int64_t RefitWindows::tokens() const {
  int64_t n = 0;
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

RefitMoments collect_refit_moments(const Model& model, const std::vector<LayerWeights>& expert_layers, int layer,
                                   const RefitWindows& windows, ThreadPool& pool) {
  const int64_t F = model.hp.n_ff;
  int64_t longest = 0;
  for (const auto& w : windows.windows) longest = std::max<int64_t>(longest, int64_t(w.size()));
  if (longest == 0) fail("sequential re-fit: no token windows");
  Session dense(model, int(longest), pool), expert(model, int(longest), pool);
  expert.set_layers(&expert_layers);
  using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  Eigen::MatrixXd gram = Eigen::MatrixXd::Zero(F, F), cross = Eigen::MatrixXd::Zero(F, F);  // [F, F]
  Eigen::VectorXd sum = Eigen::VectorXd::Zero(F), target_sum = Eigen::VectorXd::Zero(F);    // [F]
  std::vector<float> a_rows, t_rows;  // [n, F] expert and dense activations of one window
  RefitMoments m;
  for (const auto& w : windows.windows) {
    capture(expert, w, layer, F, a_rows);
    capture(dense, w, layer, F, t_rows);
    const int64_t n = int64_t(w.size());
    Eigen::Map<const RowMat> a(a_rows.data(), n, F), t(t_rows.data(), n, F);  // [n, F]
    // f32 products per window (at most a few hundred rows), summed in f64.
    gram.noalias() += (a.transpose() * a).cast<double>();    // [F, F]
    cross.noalias() += (t.transpose() * a).cast<double>();   // [F, F]
    sum += a.colwise().sum().transpose().cast<double>();
    target_sum += t.colwise().sum().transpose().cast<double>();
    m.tokens += n;
  }
  m.gram.resize(size_t(F * F));
  m.cross.resize(size_t(F * F));
  Eigen::Map<RowMat>(m.gram.data(), F, F) = gram.cast<float>();
  Eigen::Map<RowMat>(m.cross.data(), F, F) = cross.cast<float>();
  m.sum.resize(size_t(F));
  m.target_sum.resize(size_t(F));
  Eigen::Map<Eigen::VectorXf>(m.sum.data(), F) = sum.cast<float>();
  Eigen::Map<Eigen::VectorXf>(m.target_sum.data(), F) = target_sum.cast<float>();
  return m;
}

}  // namespace mf
