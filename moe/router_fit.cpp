#include "moe/router_fit.h"

#include <Eigen/Core>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <numbers>
#include <optional>

#include "core/error.h"

namespace mf {

namespace {

using Mat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// splitmix64: the same stream on every platform and standard library (std::shuffle and the
// std distributions are not specified bit for bit).
struct Rng {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform() { return double(next() >> 11) * 0x1.0p-53; }  // [0, 1)
};

// A parameter tensor with its gradient and Adam moments.
struct Param {
  Mat value, grad, m, v;
  bool decay = false;  // weight decay applies (weights, not biases)

  Param(int64_t rows, int64_t cols, float init_scale, bool decay_, Rng& rng) : decay(decay_) {
    value.resize(rows, cols);
    for (int64_t i = 0; i < value.size(); ++i) value.data()[i] = float((2 * rng.uniform() - 1) * init_scale);
    grad = m = v = Mat::Zero(rows, cols);
  }

  void adam_step(const RouterTrainOptions& o, int t, float lr_scale) {
    const float b1 = 0.9f, b2 = 0.999f, eps = 1e-8f, lr = float(o.learning_rate) * lr_scale;
    const float c1 = 1.0f / (1.0f - std::pow(b1, float(t))), c2 = 1.0f / (1.0f - std::pow(b2, float(t)));
    m = b1 * m + (1 - b1) * grad;
    v = b2 * v + (1 - b2) * grad.cwiseProduct(grad);
    if (decay) value *= 1.0f - lr * float(o.weight_decay);  // decoupled from the gradient (AdamW)
    value.array() -= lr * (m.array() * c1) / ((v.array() * c2).sqrt() + eps);
  }
};

struct Net {
  int64_t n_hidden;
  Param w1, b1;  // [n_hidden, dim], [1, n_hidden] (empty when n_hidden = 0)
  Param w2, b2;  // [n_class, n_hidden or dim], [1, n_class]

  Net(int64_t dim, int64_t hidden, int n_class, Rng& rng)
      : n_hidden(hidden),
        w1(hidden, dim, float(std::sqrt(6.0 / double(dim))), true, rng),  // He-uniform for ReLU
        b1(hidden > 0 ? 1 : 0, hidden, 0.0f, false, rng),
        w2(n_class, hidden > 0 ? hidden : dim, float(1.0 / std::sqrt(double(hidden > 0 ? hidden : dim))), true, rng),
        b2(1, n_class, 0.0f, false, rng) {}

  std::vector<Param*> params() { return n_hidden > 0 ? std::vector<Param*>{&w1, &b1, &w2, &b2} : std::vector<Param*>{&w2, &b2}; }
};

// Activations of one batch, kept for the backward pass.
struct Forward {
  Mat act;    // [B, n_hidden] ReLU outputs (unused when n_hidden = 0)
  Mat probs;  // [B, n_class] softmax
};

void forward(const Net& net, const Mat& x, Forward& f) {  // x: [B, dim]
  if (net.n_hidden > 0) {
    f.act.noalias() = x * net.w1.value.transpose();  // [B, n_hidden]
    f.act.rowwise() += net.b1.value.row(0);
    f.act = f.act.cwiseMax(0.0f);
    f.probs.noalias() = f.act * net.w2.value.transpose();  // [B, n_class]
  } else {
    f.probs.noalias() = x * net.w2.value.transpose();  // [B, n_class]
  }
  f.probs.rowwise() += net.b2.value.row(0);
  for (int64_t i = 0; i < f.probs.rows(); ++i) {
    auto row = f.probs.row(i);
    row = (row.array() - row.maxCoeff()).exp().matrix();
    row /= row.sum();
  }
}

// Copies rows `ids[begin, end)` of the data into x [end - begin, dim].
void gather(const ClassifierData& d, const std::vector<int64_t>& ids, size_t begin, size_t end, Mat& x) {
  x.resize(int64_t(end - begin), d.dim);
  for (size_t i = begin; i < end; ++i) std::memcpy(x.row(int64_t(i - begin)).data(), d.x + ids[i] * d.dim, sizeof(float) * d.dim);
}

struct Score {
  double loss = 0, accuracy = 0;  // weighted by the sample weights
};

Score evaluate(const Net& net, const ClassifierData& d, const std::vector<int64_t>& ids) {
  Score s;
  double wsum = 0;
  Mat x;
  Forward f;
  const size_t chunk = 4096;
  for (size_t b = 0; b < ids.size(); b += chunk) {
    size_t e = std::min(ids.size(), b + chunk);
    gather(d, ids, b, e, x);
    forward(net, x, f);
    for (size_t i = b; i < e; ++i) {
      auto row = f.probs.row(int64_t(i - b));
      int64_t pred;
      row.maxCoeff(&pred);
      const double w = d.w[ids[i]];
      s.loss -= w * std::log(std::max(double(row(d.y[ids[i]])), 1e-30));
      s.accuracy += w * (pred == d.y[ids[i]]);
      wsum += w;
    }
  }
  if (wsum > 0) s.loss /= wsum, s.accuracy /= wsum;
  return s;
}

}  // namespace

void fit_domain_classifier(const ClassifierData& d, const RouterTrainOptions& o, Router& r, RouterTrainReport* report) {
  if (o.hidden < 0) fail("router hidden units must be >= 0, got ", o.hidden);
  if (o.batch_size < 1) fail("router batch size must be >= 1, got ", o.batch_size);
  if (o.max_epochs < 1) fail("router epochs must be >= 1, got ", o.max_epochs);
  if (!(o.learning_rate > 0)) fail("router learning rate must be > 0, got ", o.learning_rate);
  if (!(o.weight_decay >= 0 && o.learning_rate * o.weight_decay < 1))
    fail("router weight decay must be >= 0 and below 1 / learning rate, got ", o.weight_decay);
  if (o.patience < 0) fail("router patience must be >= 0 epochs, got ", o.patience);
  if (d.train.empty()) fail("the router has no training samples");
  const auto t0 = std::chrono::steady_clock::now();
  Rng rng{o.seed};
  Net net(d.dim, o.hidden, d.n_class, rng);
  std::optional<Net> best;  // the kept parameters: early stopping's best epoch, else the last
  double best_loss = INFINITY;
  RouterTrainReport rep;
  rep.train_samples = int64_t(d.train.size());
  rep.holdout_samples = int64_t(d.holdout.size());

  std::vector<int64_t> order = d.train;
  Mat x, g, g_act;  // [B, dim], [B, n_class], [B, n_hidden]
  Forward f;
  int step = 0, since_best = 0;
  for (int epoch = 1; epoch <= o.max_epochs; ++epoch) {
    for (size_t i = order.size() - 1; i > 0; --i) std::swap(order[i], order[rng.next() % (i + 1)]);  // Fisher-Yates
    for (size_t b = 0; b < order.size(); b += size_t(o.batch_size)) {
      const size_t e = std::min(order.size(), b + size_t(o.batch_size));
      const float inv_b = 1.0f / float(e - b);
      gather(d, order, b, e, x);
      forward(net, x, f);
      // d loss / d logits = w * (p - onehot(y)) / B
      g = f.probs;  // [B, n_class]
      for (size_t i = b; i < e; ++i) {
        const int64_t row = int64_t(i - b);
        g(row, d.y[order[i]]) -= 1.0f;
        g.row(row) *= d.w[order[i]] * inv_b;
      }
      const Mat& in = net.n_hidden > 0 ? f.act : x;  // [B, n_hidden or dim] the output layer's input
      net.w2.grad.noalias() = g.transpose() * in;        // [n_class, n_hidden or dim]
      net.b2.grad = g.colwise().sum();                   // [1, n_class]
      if (net.n_hidden > 0) {
        g_act.noalias() = g * net.w2.value;  // [B, n_hidden]
        g_act = g_act.cwiseProduct((f.act.array() > 0.0f).cast<float>().matrix());  // ReLU'
        net.w1.grad.noalias() = g_act.transpose() * x;  // [n_hidden, dim]
        net.b1.grad = g_act.colwise().sum();            // [1, n_hidden]
      }
      ++step;
      // Cosine decay over max_epochs: the late, small steps settle the noisy minibatch
      // updates (the hold-out loss jumps between epochs at a constant rate).
      const double progress = (double(epoch - 1) + double(e) / double(order.size())) / double(o.max_epochs);
      const float lr_scale = float(0.5 * (1 + std::cos(std::numbers::pi * progress)));
      for (Param* p : net.params()) p->adam_step(o, step, lr_scale);
    }
    rep.epochs = epoch;
    if (d.holdout.empty()) continue;
    Score s = evaluate(net, d, d.holdout);
    rep.epoch_holdout_loss.push_back(s.loss);
    rep.epoch_holdout_accuracy.push_back(s.accuracy);
    if (o.patience > 0) {  // early stopping: keep the epoch with the best hold-out loss
      if (s.loss < best_loss) best_loss = s.loss, best = net, rep.best_epoch = epoch, since_best = 0;
      else if (++since_best >= o.patience) break;
    }
  }
  if (!best) best = net, rep.best_epoch = rep.epochs;
  if (!d.holdout.empty()) {
    rep.holdout_loss = rep.epoch_holdout_loss[size_t(rep.best_epoch - 1)];
    rep.holdout_accuracy = rep.epoch_holdout_accuracy[size_t(rep.best_epoch - 1)];
  }
  rep.train_accuracy = evaluate(*best, d, d.train).accuracy;
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  r.n_hidden = best->n_hidden;
  auto flat = [](const Mat& m) { return std::vector<float>(m.data(), m.data() + m.size()); };
  r.hidden_weight = flat(best->w1.value);
  r.hidden_bias = flat(best->b1.value);
  r.weight = flat(best->w2.value);
  r.bias = flat(best->b2.value);
  if (report) *report = std::move(rep);
}

}  // namespace mf
