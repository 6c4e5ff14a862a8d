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

namespace {

using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Keeps, in place, the rows [width] of `rows` whose token `mask` counts; returns how many.
int64_t keep_counted_rows(std::vector<float>& rows, int64_t width, const std::vector<uint8_t>& mask) {
  int64_t kept = 0;
  for (int64_t t = 0; t < int64_t(mask.size()); ++t) {
    if (!mask[size_t(t)]) continue;
    if (kept != t) std::copy_n(rows.begin() + t * width, width, rows.begin() + kept * width);
    ++kept;
  }
  return kept;
}

// The sums of RefitMoments, in f64, one window at a time.
class MomentSums {
 public:
  MomentSums(int64_t n_ff, int64_t n_embd)
      : F_(n_ff), E_(n_embd), gram_(Eigen::MatrixXd::Zero(F_, F_)), out_cross_(Eigen::MatrixXd::Zero(E_, F_)),
        sum_(Eigen::VectorXd::Zero(F_)), out_sum_(Eigen::VectorXd::Zero(E_)) {}

  // One window's rows: activations a [n, F], the dense block output [n, E] and the stream the
  // target subtracts from it [n, E]; only the rows `mask` counts when it is not null (the
  // vectors are then compacted in place).
  void add(std::vector<float>& a_rows, std::vector<float>& block_out_rows, std::vector<float>& resid_rows, int64_t n,
           const std::vector<uint8_t>* mask) {
    if (mask) {
      keep_counted_rows(a_rows, F_, *mask);
      keep_counted_rows(block_out_rows, E_, *mask);
      n = keep_counted_rows(resid_rows, E_, *mask);
    }
    Eigen::Map<const RowMat> a(a_rows.data(), n, F_);                                            // [n, F]
    Eigen::Map<const RowMat> bd(block_out_rows.data(), n, E_), resid(resid_rows.data(), n, E_);  // [n, E] each
    const RowMat y = bd - resid;                                                                 // [n, E]
    // f32 products per window (at most a few hundred rows), summed in f64.
    gram_.noalias() += (a.transpose() * a).cast<double>();       // [F, F]
    out_cross_.noalias() += (y.transpose() * a).cast<double>();  // [E, F]
    sum_ += a.colwise().sum().transpose().cast<double>();
    out_sum_ += y.colwise().sum().transpose().cast<double>();
    tokens_ += n;
  }

  RefitMoments finish() const {
    RefitMoments m;
    m.gram.resize(size_t(F_ * F_));
    m.out_cross.resize(size_t(E_ * F_));
    Eigen::Map<RowMat>(m.gram.data(), F_, F_) = gram_.cast<float>();
    Eigen::Map<RowMat>(m.out_cross.data(), E_, F_) = out_cross_.cast<float>();
    m.sum.resize(size_t(F_));
    m.out_sum.resize(size_t(E_));
    Eigen::Map<Eigen::VectorXf>(m.sum.data(), F_) = sum_.cast<float>();
    Eigen::Map<Eigen::VectorXf>(m.out_sum.data(), E_) = out_sum_.cast<float>();
    m.tokens = tokens_;
    return m;
  }

 private:
  int64_t F_, E_;
  Eigen::MatrixXd gram_, out_cross_;  // [F, F], [E, F]
  Eigen::VectorXd sum_, out_sum_;     // [F], [E]
  int64_t tokens_ = 0;
};

int64_t longest_window(const RefitWindows& windows) {
  int64_t longest = 0;
  for (const auto& w : windows.windows) longest = std::max<int64_t>(longest, int64_t(w.size()));
  if (longest == 0) fail("sequential re-fit: no token windows");
  if (!windows.masks.empty() && windows.masks.size() != windows.windows.size())
    fail("sequential re-fit: ", windows.masks.size(), " masks for ", windows.windows.size(), " windows");
  return longest;
}

void check_dense_width(const Model& model, const std::vector<LayerWeights>& expert_layers, int layer) {
  if (expert_layers.at(size_t(layer)).ffn_gate.shape[0] != model.hp.n_ff)
    fail("sequential re-fit: layer ", layer, " of the expert is not the dense ", model.hp.n_ff, " neurons wide");
}

}  // namespace

RefitMoments collect_refit_moments(const Model& model, const std::vector<LayerWeights>& expert_layers, int layer,
                                   const RefitWindows& windows, RefitTarget target, ThreadPool& pool) {
  check_dense_width(model, expert_layers, layer);
  const int64_t longest = longest_window(windows);
  Session dense(model, int(longest), pool), expert(model, int(longest), pool);
  expert.set_layers(&expert_layers);
  std::vector<float> a_rows, resid_rows, bd_rows;  // [n, F], [n, E], [n, E]: one window
  // The stream y subtracts from the dense block output: the expert's (Residual) or the dense
  // model's own (Ffn) stream entering the FFN.
  const bool residual = target == RefitTarget::Residual;
  MomentSums sums(model.hp.n_ff, model.hp.n_embd);
  for (size_t wi = 0; wi < windows.windows.size(); ++wi) {
    const std::span<const int32_t> w = windows.windows[wi];
    if (residual) {
      capture(expert, w, layer, {"ffn_resid", "ffn_gate_act"}, {&resid_rows, &a_rows});
      capture(dense, w, layer, {"block_out"}, {&bd_rows});
    } else {
      capture(expert, w, layer, {"ffn_gate_act"}, {&a_rows});
      capture(dense, w, layer, {"ffn_resid", "block_out"}, {&resid_rows, &bd_rows});
    }
    sums.add(a_rows, bd_rows, resid_rows, int64_t(w.size()), windows.masks.empty() ? nullptr : &windows.masks[wi]);
  }
  return sums.finish();
}

SequentialRefit::SequentialRefit(const Model& model, RefitWindows windows, RefitTarget target, ThreadPool& pool)
    : model_(model), windows_(std::move(windows)), target_(target) {
  const int64_t longest = longest_window(windows_);
  if (longest > Session::kMaxBatch)
    fail("sequential re-fit: a window of ", longest, " tokens is longer than a forward step (", Session::kMaxBatch, ")");
  session_ = std::make_unique<Session>(model, int(longest), pool);
  const int64_t E = model.hp.n_embd;
  for (const auto& w : windows_.windows) {
    std::vector<float> x(w.size() * size_t(E));  // [n, E]
    session_->embed(w, x.data());
    dense_.push_back(x);
    expert_.push_back(std::move(x));
  }
}

void SequentialRefit::run(const std::vector<LayerWeights>* layers, std::vector<float>& rows, int64_t n,
                          const std::vector<std::string_view>& names, std::vector<std::vector<float>*> out) {
  session_->set_layers(layers);
  session_->set_hook([&](const HookEvent& e) {
    if (e.layer != layer_) return;
    for (size_t i = 0; i < names.size(); ++i)
      if (e.name == names[i]) out[i]->assign(e.data, e.data + e.n_tokens * e.width);
  });
  session_->run_blocks(rows.data(), n, layer_, layer_);  // rows [n, E] -> the stream after layer_
  session_->set_hook({});
  for (size_t i = 0; i < names.size(); ++i)
    if (out[i]->empty()) fail("sequential re-fit: the forward pass reported no '", names[i], "' for layer ", layer_);
}

RefitMoments SequentialRefit::moments(const std::vector<LayerWeights>& expert_layers) {
  if (dense_ahead_) fail("sequential re-fit: moments of layer ", layer_, " asked twice");
  if (layer_ >= model_.hp.n_layer) fail("sequential re-fit: all ", model_.hp.n_layer, " layers are done");
  check_dense_width(model_, expert_layers, layer_);
  const int64_t E = model_.hp.n_embd;
  const bool residual = target_ == RefitTarget::Residual;
  std::vector<float> a_rows, resid_rows, dense_resid, scratch, in_rows;  // [n, F], [n, E] x 4
  MomentSums sums(model_.hp.n_ff, E);
  samples_ = {};
  for (size_t wi = 0; wi < windows_.windows.size(); ++wi) {
    const int64_t n = int64_t(windows_.windows[wi].size());
    // The dense stream moves past this layer now (its block output is the target's).
    dense_resid.clear();
    run(nullptr, dense_[wi], n, {"ffn_resid"}, {&dense_resid});
    scratch = expert_[wi];  // the expert's own stream stays before this layer until advance()
    a_rows.clear(), resid_rows.clear(), in_rows.clear();
    if (keep_samples_)
      run(&expert_layers, scratch, n, {"ffn_resid", "ffn_gate_act", "ffn_in"}, {&resid_rows, &a_rows, &in_rows});
    else
      run(&expert_layers, scratch, n, {"ffn_resid", "ffn_gate_act"}, {&resid_rows, &a_rows});
    std::vector<float> block_out = dense_[wi];  // [n, E]
    const std::vector<uint8_t>* mask = windows_.masks.empty() ? nullptr : &windows_.masks[wi];
    std::vector<float>& from = residual ? resid_rows : dense_resid;
    sums.add(a_rows, block_out, from, n, mask);  // compacts the rows to the counted ones
    if (keep_samples_) {
      const int64_t c = mask ? keep_counted_rows(in_rows, E, *mask) : n;
      samples_.inputs.insert(samples_.inputs.end(), in_rows.begin(), in_rows.begin() + c * E);
      for (int64_t i = 0; i < c * E; ++i) samples_.targets.push_back(block_out[size_t(i)] - from[size_t(i)]);
      samples_.tokens += c;
    }
  }
  dense_ahead_ = true;
  return sums.finish();
}

void SequentialRefit::advance(const std::vector<LayerWeights>& expert_layers) {
  if (layer_ >= model_.hp.n_layer) fail("sequential re-fit: all ", model_.hp.n_layer, " layers are done");
  std::vector<float> unused;
  for (size_t wi = 0; wi < windows_.windows.size(); ++wi) {
    const int64_t n = int64_t(windows_.windows[wi].size());
    if (!dense_ahead_) run(nullptr, dense_[wi], n, {}, {});
    run(&expert_layers, expert_[wi], n, {}, {});
  }
  dense_ahead_ = false;
  ++layer_;
}

}  // namespace mf
