#include "moe/expert_builder.h"

#include <memory>

#include "core/error.h"

namespace mf {

void check_build_options(const BuildOptions& o) {
  if (!(o.density > 0.0 && o.density <= 1.0)) fail("density ", o.density, " is outside (0, 1]");
  if (!(o.shared_fraction >= 0.0 && o.shared_fraction <= 1.0)) fail("shared fraction ", o.shared_fraction, " is outside [0, 1]");
  if (o.mode != "neurons" && o.mode != "dowp") fail("unknown mode '", o.mode, "' (expected neurons or dowp)");
  if (o.refit_rounds < 1 || o.refit_rounds > 100) fail("re-fit rounds ", o.refit_rounds, " is outside [1, 100]");
  if (o.refit_rows != RefitRows::Down && !(o.mode == "neurons" && o.sequential))
    fail("re-fitting the ", refit_rows_name(o.refit_rows), " rows needs the sequential re-fit of neurons mode");
}

ExpertStageOptions stage_options(const BuildOptions& o) {
  // Compensation needs the expert's activation statistics: the data-free scores get none.
  const Compensation comp = o.score == NeuronScore::Activation ? o.compensation : Compensation::None;
  ExpertStageOptions s;
  s.select.density = o.density;
  s.select.score = o.score;
  s.select.centered = comp != Compensation::None;  // what is left once the mean is restored
  s.select.obs = o.obs_select && comp == Compensation::LeastSquares;
  s.select.damp = o.refit_damp;
  s.select.shared_fraction = o.shared_fraction;
  s.select.seed = o.seed;
  s.compensate.method = comp;
  s.compensate.damp = o.refit_damp;
  s.compensate.widths = o.widths;
  s.compensate.sequential = {o.sequential, o.sequential_tokens, o.refit_target, o.refit_rows, o.refit_rounds, o.row_refit};
  s.layout.dowp = o.mode == "dowp";
  s.layout.density = o.density;
  s.layout.scale = o.dowp_scale;
  return s;
}

std::vector<double> build_cost_done(const std::vector<int64_t>& widths, int64_t n_embd, int64_t n_ff,
                                    const CompensateOptions& opts) {
  const bool rows = opts.sequential.on && opts.sequential.rows != RefitRows::Down;
  // The gate-up re-fit's conjugate-gradient products per token cost about k (4 E + k) for k
  // kept neurons (up alone somewhat less; only the ETA depends on it). The block forwards and
  // the moments, the same for every layer, are set at 0.12 of a whole layer's products, so that
  // a whole layer costs 3-5 times a narrow one, as in SmolLM2's build log (D = 0.5, 32,768
  // tokens: ~30 s for each early layer, ~110 s for each of the last six, kept whole).
  auto cost = [&](int64_t k) {
    if (!rows) return 1.0;
    return 0.12 * double(n_ff) * double(4 * n_embd + n_ff) + double(k) * double(4 * n_embd + k);
  };
  std::vector<double> done(widths.size());
  double sum = 0;
  for (size_t l = 0; l < widths.size(); ++l) done[l] = sum += cost(widths[l]);
  for (double& d : done) d /= sum;
  if (!done.empty()) done.back() = 1.0;
  return done;
}

Expert build_expert(const Model& model, const ExpertSpec& spec, const BuildOptions& opts,
                    const std::vector<LayerStats>* pooled, const LayerProgress& on_layer) {
  check_build_options(opts);
  const ExpertStageOptions so = stage_options(opts);
  const HParams& hp = model.hp;
  Expert e = start_expert(model, spec);
  if (so.layout.dowp) {
    purify_layers(model, spec, so.layout, e);
    return e;
  }
  check_compensation(spec, so.compensate, hp.n_layer);
  std::vector<std::vector<float>> down;  // [n_layer][n_embd * n_ff] the dense ffn_down in f32
  for (int il = 0; il < hp.n_layer; ++il) down.push_back(dense_down(model, il));
  const NeuronRanking ranking = rank_neurons(model, spec, down, so.select, pooled);
  std::unique_ptr<SequentialRefit> refit = start_sequential_refit(model, spec, so.compensate);
  const std::vector<int64_t> widths = layer_widths(model, spec, ranking, down, so.compensate);  // [n_layer]
  const std::vector<double> cost_done = build_cost_done(widths, hp.n_embd, hp.n_ff, so.compensate);  // [n_layer]
  // Select, compensate and lay out layer by layer: a sequential re-fit of layer il runs the
  // expert's own layers below it as they were laid out (quantised).
  for (int il = 0; il < hp.n_layer; ++il) {
    // A sequential re-fit's moments: the activations of the expert's own earlier layers (e.layers:
    // layers below il already the expert's, il and above still dense) against the target.
    const RefitMoments moments = refit ? refit->moments(e.layers) : RefitMoments{};
    const RefitMoments* seq = refit ? &moments : nullptr;
    std::vector<int32_t> kept = select_neurons(ranking, il, widths[il], so.select, seq);  // [widths[il]]
    const CompactFfn ffn =
        compensate_layer({model, spec, il, down[il], seq, refit ? &refit->samples() : nullptr}, kept, so.compensate);
    lay_out_layer(model.w.layers[il], ffn, std::move(kept), il, e);
    if (refit && il + 1 < hp.n_layer) refit->advance(e.layers);  // the expert's streams past its new layer
    if (on_layer) on_layer(il + 1, int(hp.n_layer), cost_done[size_t(il)]);
  }
  return e;
}

}  // namespace mf
