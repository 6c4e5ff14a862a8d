#include "moe/sequential_refit.h"

#include <algorithm>
#include <cmath>
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

  // One window's rows: activations a [n, F] and the targets y [n, E]; only the rows `mask`
  // counts when it is not null (the vectors are then compacted in place).
  void add(std::vector<float>& a_rows, std::vector<float>& y_rows, int64_t n, const std::vector<uint8_t>* mask) {
    if (mask) {
      keep_counted_rows(a_rows, F_, *mask);
      n = keep_counted_rows(y_rows, E_, *mask);
    }
    Eigen::Map<const RowMat> a(a_rows.data(), n, F_);  // [n, F]
    // An owned (aligned) copy, as before y had its own rows: Eigen's reductions over a Map can
    // depend on the address's alignment in their last bits.
    const RowMat y = Eigen::Map<const RowMat>(y_rows.data(), n, E_);  // [n, E]
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

// The targets y [n, E] of layer `layer`'s FFN output: what the block should add to the stream,
// block_out - from. Where a post-FFN norm (Gemma) stands between the FFN and the stream, y is
// mapped back through it: with the norm's scale held at the dense FFN output's own,
// rms(f_dense) (the row of dense_ffn_out [n, E]), f = y ⊙ rms(f_dense) / w gives norm(f) = y.
// The norm divides out f's scale, so holding it only sets how the tokens weigh in the fit; for
// the dense targets (RefitTarget::Ffn) f is f_dense exactly. A channel the norm zeroes (w = 0)
// cannot be reached and keeps its dense value.
std::vector<float> ffn_targets(const Model& model, int layer, const std::vector<float>& block_out,
                               const std::vector<float>& from, const std::vector<float>& dense_ffn_out, int64_t n) {
  const int64_t E = model.hp.n_embd;
  std::vector<float> y(size_t(n * E));  // [n, E]
  for (size_t i = 0; i < y.size(); ++i) y[i] = block_out[i] - from[i];
  const TensorView& post = model.w.layers.at(size_t(layer)).ffn_post_norm;
  if (!post.data) return y;
  if (int64_t(dense_ffn_out.size()) != n * E) fail("sequential re-fit: no dense FFN output for layer ", layer);
  const float* w = post.f32();  // [E]
  for (int64_t t = 0; t < n; ++t) {
    const float* f = dense_ffn_out.data() + t * E;  // [E]
    double ss = 0;
    for (int64_t c = 0; c < E; ++c) ss += double(f[c]) * f[c];
    const float rms = float(std::sqrt(ss / double(E) + double(model.hp.rms_eps)));
    float* yt = y.data() + t * E;  // [E]
    for (int64_t c = 0; c < E; ++c) yt[c] = w[c] != 0.0f ? yt[c] * rms / w[c] : f[c];
  }
  return y;
}

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
  std::vector<float> a_rows, resid_rows, bd_rows, f_rows;  // [n, F], [n, E] x 3: one window
  // The stream y subtracts from the dense block output: the expert's (Residual) or the dense
  // model's own (Ffn) stream entering the FFN.
  const bool residual = target == RefitTarget::Residual;
  MomentSums sums(model.hp.n_ff, model.hp.n_embd);
  for (size_t wi = 0; wi < windows.windows.size(); ++wi) {
    const std::span<const int32_t> w = windows.windows[wi];
    if (residual) {
      capture(expert, w, layer, {"ffn_resid", "ffn_gate_act"}, {&resid_rows, &a_rows});
      capture(dense, w, layer, {"ffn_out", "block_out"}, {&f_rows, &bd_rows});
    } else {
      capture(expert, w, layer, {"ffn_gate_act"}, {&a_rows});
      capture(dense, w, layer, {"ffn_resid", "ffn_out", "block_out"}, {&resid_rows, &f_rows, &bd_rows});
    }
    std::vector<float> y = ffn_targets(model, layer, bd_rows, resid_rows, f_rows, int64_t(w.size()));  // [n, E]
    sums.add(a_rows, y, int64_t(w.size()), windows.masks.empty() ? nullptr : &windows.masks[wi]);
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
  std::vector<float> a_rows, resid_rows, dense_resid, dense_f, scratch, in_rows;  // [n, F], [n, E] x 5
  MomentSums sums(model_.hp.n_ff, E);
  samples_ = {};
  for (size_t wi = 0; wi < windows_.windows.size(); ++wi) {
    const int64_t n = int64_t(windows_.windows[wi].size());
    // The dense stream moves past this layer now (its block output is the target's).
    dense_resid.clear(), dense_f.clear();
    run(nullptr, dense_[wi], n, {"ffn_resid", "ffn_out"}, {&dense_resid, &dense_f});
    scratch = expert_[wi];  // the expert's own stream stays before this layer until advance()
    a_rows.clear(), resid_rows.clear(), in_rows.clear();
    if (keep_samples_)
      run(&expert_layers, scratch, n, {"ffn_resid", "ffn_gate_act", "ffn_in"}, {&resid_rows, &a_rows, &in_rows});
    else
      run(&expert_layers, scratch, n, {"ffn_resid", "ffn_gate_act"}, {&resid_rows, &a_rows});
    const std::vector<uint8_t>* mask = windows_.masks.empty() ? nullptr : &windows_.masks[wi];
    std::vector<float> y = ffn_targets(model_, layer_, dense_[wi], residual ? resid_rows : dense_resid, dense_f, n);  // [n, E]
    sums.add(a_rows, y, n, mask);  // compacts the rows to the counted ones
    if (keep_samples_) {
      const int64_t c = mask ? keep_counted_rows(in_rows, E, *mask) : n;
      samples_.inputs.insert(samples_.inputs.end(), in_rows.begin(), in_rows.begin() + c * E);
      samples_.targets.insert(samples_.targets.end(), y.begin(), y.begin() + c * E);
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
