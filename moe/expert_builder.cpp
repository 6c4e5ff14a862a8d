#include "moe/expert_builder.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "core/error.h"
#include "moe/down_refit.h"
#include "moe/layer_widths.h"
#include "ops/ops.h"

namespace mf {

namespace {

std::vector<float> dequant(const TensorView& w, int64_t row) {
  std::vector<float> r(w.cols());  // [n_in]
  ops::dequantize_row(w.dtype, w.row(row), r.data(), w.cols());
  return r;
}

double row_norm(const TensorView& w, int64_t row) {
  double s = 0;
  for (float x : dequant(w, row)) s += double(x) * x;
  return std::sqrt(s);
}

// L2 norms of the columns of down [n_embd, n_ff]: [n_ff]
std::vector<double> column_norms(const TensorView& down) {
  std::vector<double> n(down.cols(), 0.0);
  for (int64_t r = 0; r < down.rows(); ++r) {
    std::vector<float> row = dequant(down, r);
    for (int64_t j = 0; j < down.cols(); ++j) n[j] += double(row[j]) * row[j];
  }
  for (double& x : n) x = std::sqrt(x);
  return n;
}

// A [rows, cols] matrix of `dtype` built from f32 rows.
struct MatrixBuilder {
  DType dtype;
  int64_t rows, cols;
  std::vector<uint8_t> bytes;
  MatrixBuilder(DType t, int64_t r, int64_t c) : dtype(t), rows(r), cols(c), bytes(size_t(r) * row_bytes(t, c)) {}
  void set_row(int64_t r, const float* x) { ops::quantize_row(dtype, x, bytes.data() + r * row_bytes(dtype, cols), cols); }
  void copy_row(int64_t r, const uint8_t* src) { std::copy_n(src, row_bytes(dtype, cols), bytes.data() + r * row_bytes(dtype, cols)); }
};

// Unstructured purification of one matrix W [n_out, n_in] given its inputs' sum of squares
// x_sq [n_in]: per output row ("patch"), score S_ij = |W_ij| * ||X_j||, keep the top
// round(density*n_in) (theta_i = the smallest kept score), zero the rest, and with
// DowpScale::Energy rescale survivors by alpha_i = sqrt(sum_j W_ij^2 x_j^2 / sum_kept W_ij^2 x_j^2).
std::vector<uint8_t> purify(const TensorView& w, const std::vector<float>& x_sq, double density, DowpScale scale) {
  const int64_t n_out = w.rows(), n_in = w.cols();
  const int64_t keep = std::max<int64_t>(1, std::llround(density * double(n_in)));
  MatrixBuilder out(w.dtype, n_out, n_in);
  std::vector<double> score(n_in);
  std::vector<int32_t> order(n_in);
  for (int64_t i = 0; i < n_out; ++i) {
    std::vector<float> row = dequant(w, i);  // [n_in]
    for (int64_t j = 0; j < n_in; ++j) score[j] = std::fabs(row[j]) * std::sqrt(double(x_sq[j]));
    std::iota(order.begin(), order.end(), 0);
    std::nth_element(order.begin(), order.begin() + (keep - 1), order.end(),
                     [&](int32_t a, int32_t b) { return score[a] > score[b] || (score[a] == score[b] && a < b); });
    double total = 0, kept = 0;
    for (int64_t j = 0; j < n_in; ++j) total += score[j] * score[j];
    std::vector<float> pruned(n_in, 0.0f);
    for (int64_t r = 0; r < keep; ++r) {
      pruned[order[r]] = row[order[r]];
      kept += score[order[r]] * score[order[r]];
    }
    if (scale == DowpScale::Energy && kept > 0) {
      float alpha = float(std::sqrt(total / kept));
      for (float& v : pruned) v *= alpha;
    }
    out.set_row(i, pruned.data());
  }
  return std::move(out.bytes);
}

// Layer widths for LayerWidths::ByError: candidate widths k + i*step (step about n_ff/32, whole
// quantisation blocks) per layer, each scored by the re-fit error of its top-ranked neurons,
// then the exact best split of n_layer * k (layer_widths.h).
std::vector<int64_t> widths_by_error(const Model& model, const ExpertSpec& spec, const BuildOptions& opts, int64_t k,
                                     const std::vector<std::vector<float>>& layer_down,
                                     const std::vector<std::vector<double>>& layer_scores,
                                     const std::vector<std::vector<int32_t>>& layer_forced) {
  const HParams& hp = model.hp;
  const int64_t blk = block_elems(model.w.layers[0].ffn_down.dtype);
  const int64_t step = std::max<int64_t>(blk, ((hp.n_ff + 31) / 32 + blk - 1) / blk * blk);
  std::vector<WidthCurve> curves(hp.n_layer);
  for (int il = 0; il < hp.n_layer; ++il) {
    const float* gram = (*spec.gram)[il].data();
    const LayerStats& gs = spec.gram_stats[il];
    const double energy = ffn_output_energy(layer_down[il], hp.n_embd, hp.n_ff, gram, gs.tokens);
    const DownRefitter refitter(layer_down[il], hp.n_embd, hp.n_ff, gram, gs.act_sum.data(), gs.tokens);
    for (int64_t w = k - (k - 1) / step * step; w <= hp.n_ff; w += step) {
      std::vector<int32_t> idx = top_k_neurons(layer_scores[il], w, layer_forced[il]);
      DownRefit fit = refitter.fit(idx, opts.refit_damp);
      curves[il].width.push_back(w);
      curves[il].error.push_back(energy - fit.explained);
    }
  }
  return allocate_widths(curves, k * hp.n_layer);
}

}  // namespace

void check_build_options(const BuildOptions& o) {
  if (!(o.density > 0.0 && o.density <= 1.0)) fail("density ", o.density, " is outside (0, 1]");
  if (!(o.shared_fraction >= 0.0 && o.shared_fraction <= 1.0)) fail("shared fraction ", o.shared_fraction, " is outside [0, 1]");
  if (o.mode != "neurons" && o.mode != "dowp") fail("unknown mode '", o.mode, "' (expected neurons or dowp)");
  if (o.refit_rounds < 1 || o.refit_rounds > 100) fail("re-fit rounds ", o.refit_rounds, " is outside [1, 100]");
  if (o.refit_rows != RefitRows::Down && !(o.mode == "neurons" && o.sequential))
    fail("re-fitting the ", refit_rows_name(o.refit_rows), " rows needs the sequential re-fit of neurons mode");
}

void check_build_options(const BuildOptions& o, const ArchInfo& arch) {
  check_build_options(o);
  // The row re-fit linearises silu(gate) * up; the sequential re-fit's targets are the residual
  // stream, which a post-FFN norm (Gemma) puts out of ffn_down's linear reach.
  if (o.refit_rows != RefitRows::Down && arch.ffn_act != FfnAct::SiLU)
    fail("re-fitting the ", refit_rows_name(o.refit_rows), " rows assumes a SiLU-gated FFN; ", arch.name,
         " uses GELU: use --refit-rows down");
  if (o.sequential && arch.post_norms)
    fail("the sequential re-fit does not model ", arch.name, "'s post-FFN norm yet: use --refit plain");
}

RefitRows parse_refit_rows(const std::string& name) {
  for (RefitRows r : {RefitRows::Down, RefitRows::Up, RefitRows::GateUp})
    if (name == refit_rows_name(r)) return r;
  fail("unknown --refit-rows '", name, "' (expected down, up or gate-up)");
}

const char* refit_rows_name(RefitRows r) {
  switch (r) {
    case RefitRows::Down: return "down";
    case RefitRows::Up: return "up";
    case RefitRows::GateUp: return "gate-up";
  }
  return "?";
}

int64_t ffn_weight_bytes(const std::vector<LayerWeights>& layers) {
  int64_t b = 0;
  for (const LayerWeights& l : layers)
    for (const TensorView* t : {&l.ffn_gate, &l.ffn_up, &l.ffn_down, &l.ffn_down_b})
      if (t->data) b += int64_t(t->nbytes());
  return b;
}

int64_t Expert::ffn_bytes() const { return ffn_weight_bytes(layers); }

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

Expert build_expert(const Model& model, const ExpertSpec& spec, const BuildOptions& opts,
                    const std::vector<LayerStats>* pooled) {
  check_build_options(opts, model.arch);
  const HParams& hp = model.hp;
  Expert e;
  e.name = spec.name;
  e.domain = spec.domain;
  e.subdomain = spec.subdomain;
  e.layers = model.w.layers;
  e.buffers.reserve(size_t(hp.n_layer) * 3);
  const bool needs_stats = opts.mode == "dowp" || opts.score == NeuronScore::Activation;
  if (needs_stats && int64_t(spec.stats.size()) != hp.n_layer) fail("expert '", spec.name, "': missing calibration statistics");
  // neurons mode: each layer's dense ffn_down, ranking and always-kept (shared) neurons, then
  // the width of every layer.
  const Compensation comp = opts.score == NeuronScore::Activation ? opts.compensation : Compensation::None;
  std::vector<std::vector<float>> layer_down;     // [n_layer][n_embd * n_ff]
  std::vector<std::vector<double>> layer_scores;  // [n_layer][n_ff]
  std::vector<std::vector<int32_t>> layer_forced;  // [n_layer][<= k]
  std::vector<int64_t> widths;                     // [n_layer]
  std::unique_ptr<SequentialRefit> refit;          // sequential re-fit only
  if (opts.mode == "neurons") {
    if (comp == Compensation::LeastSquares &&
        (!spec.gram || int64_t(spec.gram->size()) != hp.n_layer || int64_t(spec.gram_stats.size()) != hp.n_layer))
      fail("expert '", spec.name, "': least-squares compensation needs Gram matrices (calibrate with --gram on)");
    if (opts.widths == LayerWidths::ByError && comp != Compensation::LeastSquares)
      fail("expert '", spec.name, "': widths by error need least-squares compensation");
    if (opts.sequential && comp != Compensation::LeastSquares)
      fail("expert '", spec.name, "': a sequential re-fit needs least-squares compensation");
    if (opts.sequential && (spec.token_streams.empty() || !spec.pool))
      fail("expert '", spec.name, "': a sequential re-fit needs the calibration tokens (stats from moeforge calibrate ",
           "version 5 or later)");
    const int64_t k = neurons_for_density(model, opts.density);
    for (int il = 0; il < hp.n_layer; ++il) {
      const LayerWeights& d = model.w.layers[il];
      std::vector<float> w(size_t(hp.n_embd) * hp.n_ff);  // [n_embd, n_ff]
      for (int64_t r = 0; r < hp.n_embd; ++r)
        ops::dequantize_row(d.ffn_down.dtype, d.ffn_down.row(r), w.data() + r * hp.n_ff, hp.n_ff);
      layer_down.push_back(std::move(w));
      std::vector<int32_t> forced;
      if (opts.shared_fraction > 0) {
        if (!pooled) fail("a shared fraction needs pooled statistics");
        int64_t n_shared = std::llround(opts.shared_fraction * double(k));
        forced = top_k_neurons(neuron_scores(model, il, &(*pooled)[il], NeuronScore::Activation, opts.seed), n_shared);
      }
      layer_forced.push_back(std::move(forced));
      const LayerStats* st = spec.stats.empty() ? nullptr : &spec.stats[il];
      if (opts.obs_select && comp == Compensation::LeastSquares)  // OBS order: nested sets for every width
        layer_scores.push_back(obs_scores(layer_down[il], hp.n_embd, hp.n_ff, (*spec.gram)[il].data(),
                                          spec.gram_stats[il].act_sum.data(), spec.gram_stats[il].tokens, opts.refit_damp,
                                          layer_forced[il]));
      else
        layer_scores.push_back(neuron_scores(model, il, st, opts.score, opts.seed, comp != Compensation::None));
    }
    widths.assign(hp.n_layer, k);
    if (comp == Compensation::LeastSquares && opts.sequential)
      refit = std::make_unique<SequentialRefit>(
          model,
          spec.token_mask.empty() ? refit_windows(spec.token_streams, opts.sequential_tokens)
                                  : masked_refit_windows(spec.token_streams.at(0), spec.token_mask, opts.sequential_tokens),
          opts.refit_target, *spec.pool);
    if (refit) refit->keep_samples(opts.refit_rows != RefitRows::Down);
    if (opts.widths == LayerWidths::ByError) widths = widths_by_error(model, spec, opts, k, layer_down, layer_scores, layer_forced);
  }
  for (int il = 0; il < hp.n_layer; ++il) {
    const LayerWeights& d = model.w.layers[il];
    LayerWeights& l = e.layers[il];
    if (opts.mode == "dowp") {
      const LayerStats& st = spec.stats[il];
      e.buffers.push_back(purify(d.ffn_gate, st.ffn_in_sq, opts.density, opts.dowp_scale));
      l.ffn_gate.data = e.buffers.back().data();
      e.buffers.push_back(purify(d.ffn_up, st.ffn_in_sq, opts.density, opts.dowp_scale));
      l.ffn_up.data = e.buffers.back().data();
      e.buffers.push_back(purify(d.ffn_down, st.act_sq, opts.density, opts.dowp_scale));
      l.ffn_down.data = e.buffers.back().data();
      continue;
    }
    const int64_t k = widths[il];
    const std::vector<float>& w_down = layer_down[il];  // [n_embd, n_ff]
    const std::vector<int32_t>& forced = layer_forced[il];
    const LayerStats* st = spec.stats.empty() ? nullptr : &spec.stats[il];
    // A sequential re-fit's moments: the activations of the expert's own earlier layers (e.layers:
    // layers before il already the expert's, il and above still dense) against the target.
    RefitMoments seq;
    const bool sequential = comp == Compensation::LeastSquares && opts.sequential;
    if (sequential) seq = refit->moments(e.layers);
    // With obs_select the scores are the OBS removal order, so this is obs_select's set; with a
    // sequential re-fit OBS runs again on the moments the neurons will be re-fitted on.
    std::vector<int32_t> idx = top_k_neurons(layer_scores[il], k, forced);
    if (sequential && opts.obs_select && int64_t(forced.size()) <= k) {
      std::vector<char> alive(size_t(hp.n_ff), 1);
      for (int32_t j : obs_removal_order_to(hp.n_embd, hp.n_ff, seq.gram.data(), seq.sum.data(), seq.out_cross.data(),
                                            seq.out_sum.data(), seq.tokens, k, opts.refit_damp, forced))
        alive[size_t(j)] = 0;
      idx.clear();
      for (int64_t j = 0; j < hp.n_ff; ++j)
        if (alive[size_t(j)]) idx.push_back(int32_t(j));
    }
    // Compact copies: gate/up rows are whole rows of the dense matrices.
    MatrixBuilder gate(d.ffn_gate.dtype, k, hp.n_embd), up(d.ffn_up.dtype, k, hp.n_embd), down(d.ffn_down.dtype, hp.n_embd, k);
    for (int64_t r = 0; r < k; ++r) {
      gate.copy_row(r, d.ffn_gate.row(idx[r]));
      up.copy_row(r, d.ffn_up.row(idx[r]));
    }
    DownRefit fit;  // down [n_embd, k] and bias [n_embd]
    if (sequential) {
      fit = refit_down_to(hp.n_embd, hp.n_ff, seq.gram.data(), seq.sum.data(), seq.out_cross.data(), seq.out_sum.data(),
                          seq.tokens, idx, opts.refit_damp);
      if (opts.refit_rows != RefitRows::Down) {
        // Alternate: the kept up (and gate) rows toward the same targets, then ffn_down again.
        const SequentialRefit::Samples& smp = refit->samples();
        std::vector<float> g(static_cast<size_t>(k * hp.n_embd)), u(static_cast<size_t>(k * hp.n_embd));  // [k, n_embd] each
        for (int64_t r = 0; r < k; ++r) {
          ops::dequantize_row(d.ffn_gate.dtype, d.ffn_gate.row(idx[r]), g.data() + r * hp.n_embd, hp.n_embd);
          ops::dequantize_row(d.ffn_up.dtype, d.ffn_up.row(idx[r]), u.data() + r * hp.n_embd, hp.n_embd);
        }
        RowRefitOptions ro = opts.row_refit;
        ro.gate = opts.refit_rows == RefitRows::GateUp;
        for (int round = 0; round < opts.refit_rounds; ++round) {
          RowRefit rr = refit_rows(smp.inputs, smp.targets, smp.tokens, hp.n_embd, g, u, fit.down, fit.bias, k, ro, spec.pool);
          g = std::move(rr.gate), u = std::move(rr.up);
          fit = refit_down_on_samples(smp.inputs, smp.targets, smp.tokens, hp.n_embd, g, u, k, opts.refit_damp);
        }
        for (int64_t r = 0; r < k; ++r) gate.set_row(r, g.data() + r * hp.n_embd), up.set_row(r, u.data() + r * hp.n_embd);
      }
    } else if (comp == Compensation::LeastSquares) {
      const LayerStats& gs = spec.gram_stats[il];
      fit = refit_down(w_down, hp.n_embd, hp.n_ff, (*spec.gram)[il].data(), gs.act_sum.data(), gs.tokens, idx,
                       opts.refit_damp);
    } else {  // down's kept columns; Mean: bias[r] = sum over pruned j of mean(a_j) * down[r, j]
      fit.down.resize(size_t(hp.n_embd) * k);
      fit.bias.assign(hp.n_embd, 0.0f);
      std::vector<char> kept(hp.n_ff, 0);
      for (int32_t j : idx) kept[j] = 1;
      const double n = st ? double(std::max<int64_t>(1, st->tokens)) : 1.0;
      for (int64_t r = 0; r < hp.n_embd; ++r) {
        const float* row = w_down.data() + r * hp.n_ff;  // [n_ff]
        for (int64_t c = 0; c < k; ++c) fit.down[r * k + c] = row[idx[c]];
        if (comp != Compensation::Mean) continue;
        double acc = 0;
        for (int64_t j = 0; j < hp.n_ff; ++j)
          if (!kept[j]) acc += (st->act_sum[j] / n) * row[j];
        fit.bias[r] = float(acc);
      }
    }
    for (int64_t r = 0; r < hp.n_embd; ++r) down.set_row(r, fit.down.data() + r * k);
    e.buffers.push_back(std::move(gate.bytes));
    l.ffn_gate = make_view(d.ffn_gate.dtype, {k, hp.n_embd}, e.buffers.back().data());
    e.buffers.push_back(std::move(up.bytes));
    l.ffn_up = make_view(d.ffn_up.dtype, {k, hp.n_embd}, e.buffers.back().data());
    e.buffers.push_back(std::move(down.bytes));
    l.ffn_down = make_view(d.ffn_down.dtype, {hp.n_embd, k}, e.buffers.back().data());
    if (comp != Compensation::None) {
      std::vector<uint8_t> bias(size_t(hp.n_embd) * sizeof(float));
      std::copy_n(reinterpret_cast<const uint8_t*>(fit.bias.data()), bias.size(), bias.data());
      e.buffers.push_back(std::move(bias));
      l.ffn_down_b = make_view(DType::F32, {hp.n_embd}, e.buffers.back().data());
    }
    e.neurons.push_back(std::move(idx));
    if (sequential && il + 1 < hp.n_layer) refit->advance(e.layers);  // the expert's streams past its new layer
  }
  return e;
}

}  // namespace mf
