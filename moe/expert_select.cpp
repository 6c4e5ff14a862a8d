#include "moe/expert_select.h"

#include <algorithm>
#include <cmath>
#include <exception>
#include <numeric>
#include <random>
#include <string>

#include "core/error.h"
#include "moe/down_refit.h"
#include "ops/ops.h"

namespace mf {

namespace {

double row_norm(const TensorView& w, int64_t row) {
  std::vector<float> r(w.cols());  // [n_in]
  ops::dequantize_row(w.dtype, w.row(row), r.data(), w.cols());
  double s = 0;
  for (float x : r) s += double(x) * x;
  return std::sqrt(s);
}

// L2 norms of the columns of down [n_embd, n_ff]: [n_ff]
std::vector<double> column_norms(const TensorView& down) {
  std::vector<double> n(down.cols(), 0.0);
  std::vector<float> row(down.cols());  // [n_ff]
  for (int64_t r = 0; r < down.rows(); ++r) {
    ops::dequantize_row(down.dtype, down.row(r), row.data(), down.cols());
    for (int64_t j = 0; j < down.cols(); ++j) n[j] += double(row[j]) * row[j];
  }
  for (double& x : n) x = std::sqrt(x);
  return n;
}

}  // namespace

std::vector<double> neuron_scores(const Model& model, int layer, const LayerStats* stats, NeuronScore score,
                                  uint64_t seed, bool centered) {
  const LayerWeights& l = model.w.layers[layer];
  const int64_t F = model.hp.n_ff;
  std::vector<double> s(F);
  if (score == NeuronScore::Random) {
    std::mt19937_64 rng(seed * 1000003u + uint64_t(layer));
    std::uniform_real_distribution<double> u(0.0, 1.0);
    for (double& x : s) x = u(rng);
    return s;
  }
  std::vector<double> down = column_norms(l.ffn_down);  // [n_ff]
  if (score == NeuronScore::Magnitude) {
    for (int64_t j = 0; j < F; ++j) s[j] = row_norm(l.ffn_gate, j) * row_norm(l.ffn_up, j) * down[j];
    return s;
  }
  if (!stats || int64_t(stats->act_sq.size()) != F || stats->tokens <= 0)
    fail("neuron scores: missing activation statistics for layer ", layer);
  const double n = double(stats->tokens);
  for (int64_t j = 0; j < F; ++j) {
    double second = stats->act_sq[j] / n, mean = stats->act_sum[j] / n;
    s[j] = std::sqrt(std::max(0.0, centered ? second - mean * mean : second)) * down[j];
  }
  return s;
}

std::vector<int32_t> top_k_neurons(const std::vector<double>& scores, int64_t k, const std::vector<int32_t>& forced) {
  const int64_t n = int64_t(scores.size());
  k = std::min(k, n);
  std::vector<char> taken(n, 0);
  std::vector<int32_t> out;
  for (int32_t j : forced)
    if (int64_t(out.size()) < k && !taken[j]) taken[j] = 1, out.push_back(j);
  std::vector<int32_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return scores[a] > scores[b]; });
  for (int32_t j : order) {
    if (int64_t(out.size()) >= k) break;
    if (!taken[j]) taken[j] = 1, out.push_back(j);
  }
  std::sort(out.begin(), out.end());
  return out;
}

int64_t neurons_for_density(const Model& model, double density) {
  const int64_t F = model.hp.n_ff;
  int64_t k = std::max<int64_t>(1, std::llround(density * double(F)));
  const int blk = block_elems(model.w.layers[0].ffn_down.dtype);
  if (blk > 1) k = std::min(F, (k + blk - 1) / blk * blk);
  return k;
}

NeuronRanking rank_neurons(const Model& model, const ExpertSpec& spec, const std::vector<std::vector<float>>& down,
                           const SelectOptions& opts, const std::vector<LayerStats>* pooled) {
  const HParams& hp = model.hp;
  if (opts.score == NeuronScore::Activation && int64_t(spec.stats.size()) != hp.n_layer)
    fail("expert '", spec.name, "': missing calibration statistics");
  if (opts.obs &&
      (!spec.gram || int64_t(spec.gram->size()) != hp.n_layer || int64_t(spec.gram_stats.size()) != hp.n_layer))
    fail("expert '", spec.name, "': OBS neuron selection needs Gram matrices (calibrate with --gram on)");
  if (opts.shared_fraction > 0 && !pooled) fail("a shared fraction needs pooled statistics");
  NeuronRanking r;
  r.k = neurons_for_density(model, opts.density);
  r.scores.resize(size_t(hp.n_layer));
  r.forced.resize(size_t(hp.n_layer));
  for (int il = 0; il < hp.n_layer; ++il) {
    if (opts.shared_fraction > 0) {  // [<= k]
      const int64_t n_shared = std::llround(opts.shared_fraction * double(r.k));
      r.forced[il] = top_k_neurons(neuron_scores(model, il, &(*pooled)[il], NeuronScore::Activation, opts.seed), n_shared);
    }
    if (!opts.obs) {
      const LayerStats* st = spec.stats.empty() ? nullptr : &spec.stats[il];
      r.scores[il] = neuron_scores(model, il, st, opts.score, opts.seed, opts.centered);
    }
  }
  if (!opts.obs) return r;
  // The OBS removal order (nested sets for every width): about a second per layer of a
  // 1536-neuron FFN and independent across layers, so the layers share the pool. Each
  // layer's order is computed by one thread alone: the same bits whatever the thread count.
  std::vector<std::string> errors(size_t(hp.n_layer));
  auto one = [&](int64_t il) {
    const LayerStats& gs = spec.gram_stats[il];
    try {
      r.scores[il] = obs_scores(down[il], hp.n_embd, hp.n_ff, (*spec.gram)[il].data(), gs.act_sum.data(), gs.tokens,
                                opts.damp, r.forced[il]);
    } catch (const std::exception& e) {
      errors[il] = e.what();
    }
  };
  if (spec.pool)
    spec.pool->parallel_for(hp.n_layer, 1, [&](int, int64_t b, int64_t e) {
      for (int64_t il = b; il < e; ++il) one(il);
    });
  else
    for (int64_t il = 0; il < hp.n_layer; ++il) one(il);
  for (int il = 0; il < hp.n_layer; ++il)
    if (!errors[il].empty()) fail("expert '", spec.name, "', layer ", il, ": ", errors[il]);
  return r;
}

std::vector<int32_t> select_neurons(const NeuronRanking& ranking, int layer, int64_t width, const SelectOptions& opts,
                                    const RefitMoments* moments) {
  const std::vector<double>& scores = ranking.scores[size_t(layer)];
  const std::vector<int32_t>& forced = ranking.forced[size_t(layer)];
  if (!moments || !opts.obs || int64_t(forced.size()) > width) return top_k_neurons(scores, width, forced);
  // OBS again, on the activations the neurons will be re-fitted on.
  const int64_t n_ff = int64_t(scores.size()), n_embd = int64_t(moments->out_sum.size());
  const RefitMoments& m = *moments;
  std::vector<char> alive(size_t(n_ff), 1);
  for (int32_t j : obs_removal_order_to(n_embd, n_ff, m.gram.data(), m.sum.data(), m.out_cross.data(), m.out_sum.data(),
                                        m.tokens, width, opts.damp, forced))
    alive[size_t(j)] = 0;
  std::vector<int32_t> kept;  // [width]
  for (int64_t j = 0; j < n_ff; ++j)
    if (alive[size_t(j)]) kept.push_back(int32_t(j));
  return kept;
}

}  // namespace mf
