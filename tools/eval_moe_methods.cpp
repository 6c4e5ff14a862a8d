#include "tools/eval_moe_methods.h"

#include <cstdio>
#include <optional>

namespace mf::cli {

const std::vector<Method> kMethods = {
    {"neurons", "domain expert, structured (this work), test domain given, sub-domain routed", true, false},
    {"neurons-routed", "the same experts, domain and sub-domain chosen by the router", true, true},
    {"dowp", "domain expert, unstructured DOWP purification (quality reference)", true, false},
    {"agnostic", "structured, the domain experts' build on all domains pooled", false, false},
    {"magnitude", "structured, weight magnitude only", false, false},
    {"random", "structured, random neurons", false, false},
    {"wanda", "unstructured Wanda (|W| * ||X||, all domains pooled)", false, false},
};

Built build_method(const Model& model, const CalibStats& stats, const MethodContext& ctx, const std::string& method,
                   double density, int K, const std::function<void(const BuildProgress&)>& on_progress) {
  MoeBuildOptions o;
  o.router = ctx.router;
  o.build.density = density;
  o.build.compensation = ctx.compensation;
  o.build.widths = ctx.widths;
  o.build.refit_damp = ctx.refit_damp;
  o.build.sequential = ctx.sequential;
  o.build.refit_target = ctx.refit_target;
  o.build.shared_fraction = method == "neurons" ? ctx.shared_fraction : 0.0;
  // The agnostic expert is the domain experts' build on all domains pooled (selection,
  // compensation, widths and re-fit alike): what routing adds is then all that differs.
  o.build.obs_select = (method == "neurons" || method == "agnostic") && ctx.obs_select;
  o.build.sequential_tokens = ctx.refit_tokens;
  o.build.refit_rows = ctx.sequential ? ctx.refit_rows : RefitRows::Down;
  o.build.refit_rounds = ctx.refit_rounds;
  o.build.row_refit = ctx.row_refit;
  o.pool = ctx.pool;
  o.subdomains = K;
  o.threshold = 0.0f;
  std::optional<ExpertCheckpoint> checkpoint;
  if (!ctx.checkpoint_dir.empty()) {
    char name[32], exact[40];
    std::snprintf(name, sizeof name, "%.4g", density);    // the directory's
    std::snprintf(exact, sizeof exact, "%.17g", density);  // the key's: nearby densities never share
    const std::string sub = K > 1 ? "x" + std::to_string(K) : "";
    checkpoint.emplace(ctx.checkpoint_dir + "/" + method + "@" + name + sub,
                       ctx.checkpoint_key + "\nbuild " + method + "@" + exact + sub);
    o.checkpoint = &*checkpoint;
  }
  if (method == "neurons") return {build_moe(model, stats, o, on_progress)};
  if (method == "dowp") {
    o.build.mode = "dowp";
    o.build.refit_rows = RefitRows::Down;
    return {build_moe(model, stats, o, on_progress)};
  }
  ExpertSpec spec;
  spec.name = method;
  spec.stats = pooled_stats(stats);
  if (!ctx.pooled_gram.empty()) spec.gram = &ctx.pooled_gram, spec.gram_stats = spec.stats;
  BuildOptions b = o.build;
  if (method != "agnostic") b.widths = LayerWidths::Uniform, b.sequential = false, b.refit_rows = RefitRows::Down;
  if (b.sequential) spec.token_streams = calibration_tokens(stats);
  spec.pool = ctx.pool;
  if (method == "magnitude") b.score = NeuronScore::Magnitude;
  if (method == "random") b.score = NeuronScore::Random;
  if (method == "wanda") b.mode = "dowp", b.dowp_scale = DowpScale::None;  // plain Wanda masks
  Built r;
  LayerProgress on_layer;
  if (on_progress) on_layer = [&](int l, int L, double work) { on_progress({0, 1, l, L, work}); };
  r.parts.experts.push_back(checkpointed_expert(o.checkpoint, model, 0, spec.name, r.parts,
                                                [&] { return build_expert(model, spec, b, nullptr, on_layer); }));
  if (on_progress) on_progress({1, 1, 0, int(model.hp.n_layer)});
  return r;
}

}  // namespace mf::cli
