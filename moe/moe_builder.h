// From calibration statistics to a complete MoE: router plus one expert per (domain,
// sub-domain), each built from the statistics of its own calibration samples.
#pragma once
#include <functional>
#include <vector>

#include "calib/calib_stats.h"
#include "moe/expert_builder.h"
#include "moe/expert_checkpoint.h"
#include "moe/router.h"

namespace mf {

struct MoeBuildOptions {
  BuildOptions build;
  int subdomains = 1;
  float threshold = 0.5f;
  RouterTrainOptions router;
  ThreadPool* pool = nullptr;  // for build.sequential: the re-fit's forward passes
  // Where finished experts are saved and looked up before each is built (expert_checkpoint.h);
  // none: every expert is built.
  const ExpertCheckpoint* checkpoint = nullptr;
};

struct MoeParts {
  Router router;
  RouterTrainReport router_report;
  std::vector<Expert> experts;  // domain-major: d * K + s
  int resumed = 0;              // experts taken from the checkpoint instead of built
  std::string checkpoint_error; // why the checkpoint could not be written (the build went on), or empty
};

// Where a build is: `expert` experts of n_experts are done and the next has `layer` of its
// n_layer layers (an expert just finished: expert counts it, layer is 0).
struct BuildProgress {
  int expert = 0, n_experts = 0, layer = 0, n_layer = 0;
  double expert_done = 0;   // share of the current expert's build cost done (LayerProgress)
  double fraction() const;  // of the whole build's cost, in [0, 1], experts counted equal
};

// The expert named `name` saved at `index` in `checkpoint` if it is there (parts.resumed counts
// it), else build() saved there (parts.checkpoint_error says why not, once). No checkpoint:
// build().
Expert checkpointed_expert(const ExpertCheckpoint* checkpoint, const Model& model, size_t index, const std::string& name,
                           MoeParts& parts, const std::function<Expert()>& build);

// Throws mf::Error on stats from another model, bad options, or too few calibration
// clusters for the sub-domain count.
MoeParts build_moe(const Model& model, const CalibStats& stats, const MoeBuildOptions& opts,
                   const std::function<void(const BuildProgress&)>& on_progress = {});

// Summed statistics of all domains ([n_layer]), for domain-agnostic baselines.
std::vector<LayerStats> pooled_stats(const CalibStats& stats);
// Summed FFN activation Gram matrices of all domains ([n_layer][n_ff * n_ff]; empty without).
std::vector<std::vector<float>> pooled_gram(const CalibStats& stats);

// The calibration token streams of these domains (all when empty), for a sequential re-fit.
// Throws mf::Error when the stats hold no token ids (version 4).
std::vector<std::span<const int32_t>> calibration_tokens(const CalibStats& stats, const std::vector<int>& domains = {});

// Which tokens of domain d's calibration stream (calibration_tokens(stats, {d})[0]) belong to
// samples whose micro-cluster maps to sub-domain s (sub_of_cluster: [n_clusters] ->
// sub-domain): 1 for those, 0 for the rest. Throws mf::Error without token ids or when no
// sample belongs to s.
std::vector<uint8_t> subdomain_token_mask(const CalibStats& stats, int d, const std::vector<int>& sub_of_cluster, int s);

// Compensation named auto (least squares when the stats have Gram matrices, else mean),
// lsq, mean or none. Throws mf::Error on another name, or lsq without Gram matrices.
Compensation parse_compensation(const std::string& name, const CalibStats& stats);
// Layer widths named auto (error with least-squares compensation, else uniform), uniform,
// error or relative; the last two need least-squares compensation. Throws mf::Error.
LayerWidths parse_layer_widths(const std::string& name, Compensation compensation);
// "uniform", "error" or "relative".
const char* layer_widths_name(LayerWidths w);
// Sequential re-fit target named ffn or residual. Throws mf::Error on another name.
RefitTarget parse_refit_target(const std::string& name);
// Neuron choice named auto (obs with least-squares compensation, else score), obs (structured
// OBS on the Gram matrices; needs lsq) or score. True for OBS. Throws mf::Error.
bool parse_neuron_select(const std::string& name, Compensation compensation);
// Re-fit named auto (sequential with least-squares compensation and stats that hold the
// calibration token ids, else plain), plain or sequential (needs both). True for sequential.
// Throws mf::Error.
bool parse_refit(const std::string& name, Compensation compensation, const CalibStats& stats);

}  // namespace mf
