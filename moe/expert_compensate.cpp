#include "moe/expert_compensate.h"

#include <algorithm>

#include "core/error.h"
#include "moe/down_refit.h"
#include "moe/layer_widths.h"
#include "ops/ops.h"

namespace mf {

namespace {

// ffn_down's kept columns; with `mean` (FLAP) the pruned neurons' mean output as the bias,
// bias[r] = sum over pruned j of mean(a_j) * down[r, j].
CompactFfn kept_columns(const LayerFitInput& in, const std::vector<int32_t>& kept, bool mean) {
  const HParams& hp = in.model.hp;
  const int64_t k = int64_t(kept.size());
  const LayerStats* st = in.spec.stats.empty() ? nullptr : &in.spec.stats[size_t(in.layer)];
  if (mean && (!st || int64_t(st->act_sum.size()) != hp.n_ff))
    fail("expert '", in.spec.name, "': mean compensation needs activation statistics");
  CompactFfn f;
  f.down.resize(size_t(hp.n_embd) * k);  // [n_embd, k]
  if (mean) f.bias.assign(hp.n_embd, 0.0f);
  std::vector<char> is_kept(hp.n_ff, 0);
  for (int32_t j : kept) is_kept[j] = 1;
  const double n = st ? double(std::max<int64_t>(1, st->tokens)) : 1.0;
  for (int64_t r = 0; r < hp.n_embd; ++r) {
    const float* row = in.down.data() + r * hp.n_ff;  // [n_ff]
    for (int64_t c = 0; c < k; ++c) f.down[r * k + c] = row[kept[c]];
    if (!mean) continue;
    double acc = 0;
    for (int64_t j = 0; j < hp.n_ff; ++j)
      if (!is_kept[j]) acc += (st->act_sum[j] / n) * row[j];
    f.bias[r] = float(acc);
  }
  return f;
}

// ffn_down and the bias re-fitted on the dense model's activations (the Gram matrices).
CompactFfn least_squares(const LayerFitInput& in, const std::vector<int32_t>& kept, double damp) {
  const HParams& hp = in.model.hp;
  const ExpertSpec& spec = in.spec;
  if (!spec.gram || int64_t(spec.gram->size()) != hp.n_layer || int64_t(spec.gram_stats.size()) != hp.n_layer)
    fail("expert '", spec.name, "': least-squares compensation needs Gram matrices (calibrate with --gram on)");
  const LayerStats& gs = spec.gram_stats[size_t(in.layer)];
  DownRefit fit = refit_down(in.down, hp.n_embd, hp.n_ff, (*spec.gram)[size_t(in.layer)].data(), gs.act_sum.data(),
                             gs.tokens, kept, damp);
  CompactFfn f;
  f.down = std::move(fit.down), f.bias = std::move(fit.bias);
  return f;
}

// ffn_down and the bias re-fitted on the expert's own activations toward the sequential
// re-fit's target, then with row re-fits alternating with the kept up (and gate) rows.
CompactFfn sequential(const LayerFitInput& in, const std::vector<int32_t>& kept, const CompensateOptions& opts) {
  const HParams& hp = in.model.hp;
  const SequentialOptions& so = opts.sequential;
  if (!in.moments) fail("expert '", in.spec.name, "': a sequential re-fit needs its moments at layer ", in.layer);
  if (so.rows != RefitRows::Down && !in.samples)
    fail("expert '", in.spec.name, "': re-fitting the ", refit_rows_name(so.rows), " rows needs the re-fit's samples");
  const RefitMoments& m = *in.moments;
  const int64_t k = int64_t(kept.size());
  DownRefit fit = refit_down_to(hp.n_embd, hp.n_ff, m.gram.data(), m.sum.data(), m.out_cross.data(), m.out_sum.data(),
                                m.tokens, kept, opts.damp);  // down [n_embd, k] and bias [n_embd]
  CompactFfn f;
  if (so.rows != RefitRows::Down) {
    // Alternate: the kept up (and gate) rows toward the same targets, then ffn_down again.
    const SequentialRefit::Samples& smp = *in.samples;
    const LayerWeights& d = in.model.w.layers[size_t(in.layer)];
    std::vector<float> g(static_cast<size_t>(k * hp.n_embd)), u(static_cast<size_t>(k * hp.n_embd));  // [k, n_embd] each
    for (int64_t r = 0; r < k; ++r) {
      ops::dequantize_row(d.ffn_gate.dtype, d.ffn_gate.row(kept[r]), g.data() + r * hp.n_embd, hp.n_embd);
      ops::dequantize_row(d.ffn_up.dtype, d.ffn_up.row(kept[r]), u.data() + r * hp.n_embd, hp.n_embd);
    }
    RowRefitOptions ro = so.row_refit;
    ro.gate = so.rows == RefitRows::GateUp;
    ro.act = in.model.arch.ffn_act;
    for (int round = 0; round < so.rounds; ++round) {
      RowRefit rr = refit_rows(smp.inputs, smp.targets, smp.tokens, hp.n_embd, g, u, fit.down, fit.bias, k, ro, in.spec.pool);
      g = std::move(rr.gate), u = std::move(rr.up);
      fit = refit_down_on_samples(smp.inputs, smp.targets, smp.tokens, hp.n_embd, g, u, k, opts.damp, ro.act);
    }
    f.gate = std::move(g), f.up = std::move(u);
  }
  f.down = std::move(fit.down), f.bias = std::move(fit.bias);
  return f;
}

}  // namespace

void check_compensation(const ExpertSpec& spec, const CompensateOptions& opts, int64_t n_layer) {
  const bool lsq = opts.method == Compensation::LeastSquares;
  if (lsq && (!spec.gram || int64_t(spec.gram->size()) != n_layer || int64_t(spec.gram_stats.size()) != n_layer))
    fail("expert '", spec.name, "': least-squares compensation needs Gram matrices (calibrate with --gram on)");
  if (opts.widths != LayerWidths::Uniform && !lsq)
    fail("expert '", spec.name, "': widths by error need least-squares compensation");
  if (opts.sequential.on && !lsq) fail("expert '", spec.name, "': a sequential re-fit needs least-squares compensation");
  if (opts.sequential.on && (spec.token_streams.empty() || !spec.pool))
    fail("expert '", spec.name, "': a sequential re-fit needs the calibration tokens (stats from moeforge calibrate ",
         "version 5 or later)");
}

std::vector<int64_t> layer_widths(const Model& model, const ExpertSpec& spec, const NeuronRanking& ranking,
                                  const std::vector<std::vector<float>>& down, const CompensateOptions& opts) {
  const HParams& hp = model.hp;
  const int64_t k = ranking.k;
  if (opts.widths == LayerWidths::Uniform) return std::vector<int64_t>(size_t(hp.n_layer), k);
  if (!spec.gram || int64_t(spec.gram->size()) != hp.n_layer || int64_t(spec.gram_stats.size()) != hp.n_layer)
    fail("expert '", spec.name, "': widths by error need Gram matrices (calibrate with --gram on)");
  const int64_t blk = block_elems(model.w.layers[0].ffn_down.dtype);
  const int64_t step = std::max<int64_t>(blk, ((hp.n_ff + 31) / 32 + blk - 1) / blk * blk);
  std::vector<WidthCurve> curves(hp.n_layer);
  for (int il = 0; il < hp.n_layer; ++il) {
    const float* gram = (*spec.gram)[il].data();  // [n_ff, n_ff]
    const LayerStats& gs = spec.gram_stats[il];
    const double energy = ffn_output_energy(down[il], hp.n_embd, hp.n_ff, gram, gs.tokens);
    const DownRefitter refitter(down[il], hp.n_embd, hp.n_ff, gram, gs.act_sum.data(), gs.tokens);
    for (int64_t w = k - (k - 1) / step * step; w <= hp.n_ff; w += step) {
      std::vector<int32_t> kept = top_k_neurons(ranking.scores[il], w, ranking.forced[il]);
      DownRefit fit = refitter.fit(kept, opts.damp);
      curves[il].width.push_back(w);
      const double error = energy - fit.explained;
      curves[il].error.push_back(opts.widths == LayerWidths::ByRelativeError ? error / std::max(energy, 1e-30) : error);
    }
  }
  return allocate_widths(curves, k * hp.n_layer);
}

std::unique_ptr<SequentialRefit> start_sequential_refit(const Model& model, const ExpertSpec& spec,
                                                        const CompensateOptions& opts) {
  const SequentialOptions& so = opts.sequential;
  if (!so.on) return nullptr;
  if (spec.token_streams.empty() || !spec.pool)
    fail("expert '", spec.name, "': a sequential re-fit needs the calibration tokens and a thread pool");
  auto refit = std::make_unique<SequentialRefit>(
      model,
      spec.token_mask.empty() ? refit_windows(spec.token_streams, so.tokens)
                              : masked_refit_windows(spec.token_streams.at(0), spec.token_mask, so.tokens),
      so.target, *spec.pool);
  refit->keep_samples(so.rows != RefitRows::Down);  // the row re-fits' data
  return refit;
}

CompactFfn compensate_layer(const LayerFitInput& in, const std::vector<int32_t>& kept, const CompensateOptions& opts) {
  if (opts.sequential.on) {
    if (opts.method != Compensation::LeastSquares)
      fail("expert '", in.spec.name, "': a sequential re-fit needs least-squares compensation");
    return sequential(in, kept, opts);
  }
  switch (opts.method) {
    case Compensation::LeastSquares: return least_squares(in, kept, opts.damp);
    case Compensation::Mean: return kept_columns(in, kept, true);
    case Compensation::None: break;
  }
  return kept_columns(in, kept, false);
}

}  // namespace mf
