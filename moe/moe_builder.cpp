#include "moe/moe_builder.h"

#include <algorithm>

#include "core/error.h"

namespace mf {

std::vector<LayerStats> pooled_stats(const CalibStats& stats) {
  std::vector<LayerStats> p(stats.n_layer);
  for (const DomainStats& d : stats.domains)
    for (int64_t l = 0; l < stats.n_layer; ++l) p[l].add(d.pooled_layer(int(l)));
  return p;
}

std::vector<std::vector<float>> pooled_gram(const CalibStats& stats) {
  std::vector<std::vector<float>> g;
  if (!stats.has_gram()) return g;
  g = stats.domains[0].act_gram;
  for (size_t d = 1; d < stats.domains.size(); ++d)
    for (size_t l = 0; l < g.size(); ++l)
      for (size_t i = 0; i < g[l].size(); ++i) g[l][i] += stats.domains[d].act_gram[l][i];
  return g;
}

std::vector<std::span<const int32_t>> calibration_tokens(const CalibStats& stats, const std::vector<int>& domains) {
  if (!stats.has_tokens())
    fail("the calibration stats hold no token ids (version 4): re-run moeforge calibrate for a sequential re-fit");
  std::vector<std::span<const int32_t>> out;
  for (size_t d = 0; d < stats.domains.size(); ++d)
    if (domains.empty() || std::find(domains.begin(), domains.end(), int(d)) != domains.end())
      out.emplace_back(stats.domains[d].tokens);
  return out;
}

std::vector<uint8_t> subdomain_token_mask(const CalibStats& stats, int d, const std::vector<int>& sub_of_cluster, int s) {
  const std::span<const int32_t> all = calibration_tokens(stats, {d}).at(0);
  const DomainStats& ds = stats.domains.at(size_t(d));
  const size_t per = size_t(stats.sample_tokens);
  if (all.size() != size_t(ds.n_samples()) * per)
    fail("domain '", ds.name, "': ", all.size(), " calibration token ids for ", ds.n_samples(), " samples of ", per, " tokens");
  std::vector<uint8_t> mask(all.size(), 0);
  bool any = false;
  for (int64_t i = 0; i < ds.n_samples(); ++i)
    if (sub_of_cluster.at(size_t(ds.sample_cluster[size_t(i)])) == s)
      std::fill_n(mask.begin() + i * int64_t(per), per, uint8_t(1)), any = true;
  if (!any) fail("domain '", ds.name, "': no calibration sample in sub-domain ", s);
  return mask;
}

Compensation parse_compensation(const std::string& name, const CalibStats& stats) {
  if (name == "auto") return stats.has_gram() ? Compensation::LeastSquares : Compensation::Mean;
  if (name == "mean") return Compensation::Mean;
  if (name == "none") return Compensation::None;
  if (name != "lsq") fail("unknown compensation '", name, "' (expected auto, lsq, mean or none)");
  if (!stats.has_gram())
    fail("least-squares compensation needs Gram matrices in the calibration stats (calibrate with --gram on)");
  return Compensation::LeastSquares;
}

LayerWidths parse_layer_widths(const std::string& name, Compensation compensation) {
  if (name == "auto") return compensation == Compensation::LeastSquares ? LayerWidths::ByError : LayerWidths::Uniform;
  if (name == "uniform") return LayerWidths::Uniform;
  if (name != "error" && name != "relative")
    fail("unknown layer widths '", name, "' (expected auto, uniform, error or relative)");
  if (compensation != Compensation::LeastSquares)
    fail("layer widths by error need least-squares compensation (Gram matrices in the stats, --compensation lsq)");
  return name == "error" ? LayerWidths::ByError : LayerWidths::ByRelativeError;
}

const char* layer_widths_name(LayerWidths w) {
  return w == LayerWidths::ByError ? "error" : w == LayerWidths::ByRelativeError ? "relative" : "uniform";
}

RefitTarget parse_refit_target(const std::string& name) {
  if (name == "ffn") return RefitTarget::Ffn;
  if (name != "residual") fail("unknown re-fit target '", name, "' (expected ffn or residual)");
  return RefitTarget::Residual;
}

bool parse_neuron_select(const std::string& name, Compensation compensation) {
  const bool lsq = compensation == Compensation::LeastSquares;
  if (name == "auto") return lsq;
  if (name == "score") return false;
  if (name != "obs") fail("unknown neuron selection '", name, "' (expected auto, obs or score)");
  if (!lsq) fail("OBS neuron selection needs least-squares compensation (Gram matrices in the stats, --compensation lsq)");
  return true;
}

bool parse_refit(const std::string& name, Compensation compensation, const CalibStats& stats) {
  const bool lsq = compensation == Compensation::LeastSquares;
  if (name == "auto") return lsq && stats.has_tokens();
  if (name == "plain") return false;
  if (name != "sequential") fail("unknown re-fit '", name, "' (expected auto, plain or sequential)");
  if (!lsq) fail("a sequential re-fit needs least-squares compensation (Gram matrices in the stats, --compensation lsq)");
  calibration_tokens(stats);  // fails on stats without token ids
  return true;
}

double BuildProgress::fraction() const {
  if (n_experts <= 0) return 1.0;
  return (double(expert) + (expert < n_experts ? expert_done : 0.0)) / double(n_experts);
}

Expert checkpointed_expert(const ExpertCheckpoint* checkpoint, const Model& model, size_t index, const std::string& name,
                           MoeParts& parts, const std::function<Expert()>& build) {
  if (!checkpoint) return build();
  if (std::optional<Expert> e = checkpoint->load(model, index); e && e->name == name) {
    ++parts.resumed;
    return std::move(*e);
  }
  Expert e = build();
  if (parts.checkpoint_error.empty()) checkpoint->save(model, index, e, &parts.checkpoint_error);
  return e;
}

MoeParts build_moe(const Model& model, const CalibStats& stats, const MoeBuildOptions& opts,
                   const std::function<void(const BuildProgress&)>& on_progress) {
  stats.check_model(model);
  check_build_options(opts.build);
  if (!(opts.threshold >= 0.0f && opts.threshold <= 1.0f)) fail("router threshold ", opts.threshold, " is outside [0, 1]");
  MoeParts parts;
  std::vector<std::vector<int>> micro_to_sub;
  parts.router = train_router(stats, opts.subdomains, opts.router, &micro_to_sub, &parts.router_report);
  parts.router.threshold = opts.threshold;
  std::vector<LayerStats> pooled = pooled_stats(stats);
  const int D = int(stats.domains.size()), K = opts.subdomains;
  for (int d = 0; d < D; ++d) {
    const DomainStats& ds = stats.domains[d];
    std::vector<LayerStats> domain_layers;  // [n_layer] the tokens the Gram matrices sum (only with them)
    if (!ds.act_gram.empty())
      for (int64_t l = 0; l < stats.n_layer; ++l) domain_layers.push_back(ds.pooled_layer(int(l)));
    for (int s = 0; s < K; ++s) {
      ExpertSpec spec;
      if (!ds.act_gram.empty()) spec.gram = &ds.act_gram, spec.gram_stats = domain_layers;
      if (opts.build.sequential) {
        if (!opts.pool) fail("a sequential re-fit needs a thread pool");
        // A sub-domain expert is re-fitted on its own samples only, but run in the windows of
        // its domain's stream they were drawn from, so they keep their context: they are
        // short runs scattered through the domain.
        spec.token_streams = calibration_tokens(stats, {d});
        if (K > 1) spec.token_mask = subdomain_token_mask(stats, d, micro_to_sub[d], s);
      }
      spec.pool = opts.pool;
      spec.name = ds.name + "/" + std::to_string(s);
      spec.domain = d;
      spec.subdomain = s;
      spec.stats.resize(stats.n_layer);
      for (size_t c = 0; c < ds.clusters.size(); ++c)
        if (micro_to_sub[d][c] == s)
          for (int64_t l = 0; l < stats.n_layer; ++l) spec.stats[l].add(ds.clusters[c].layers[l]);
      const int done = d * K + s, L = int(model.hp.n_layer);
      LayerProgress on_layer;
      if (on_progress) on_layer = [&](int l, int, double work) { on_progress({done, D * K, l, L, work}); };
      parts.experts.push_back(checkpointed_expert(opts.checkpoint, model, size_t(done), spec.name, parts,
                                                  [&] { return build_expert(model, spec, opts.build, &pooled, on_layer); }));
      if (on_progress) on_progress({done + 1, D * K, 0, L});
    }
  }
  return parts;
}

}  // namespace mf
