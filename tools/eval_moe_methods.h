// The experts and same-density baselines that eval-moe compares: how each method is built
// from calibration statistics (shared by the perplexity and the task-accuracy protocols).
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "calib/calib_stats.h"
#include "core/thread_pool.h"
#include "moe/moe_builder.h"

namespace mf::cli {

// The methods compared at each density. Structured ones run as compact experts.
struct Method {
  std::string name, description;
  bool per_domain;  // one expert per domain (and sub-domain) vs one for all domains
  bool routed;      // the router picks the domain (else the test domain is given)
};

extern const std::vector<Method> kMethods;

struct Built {
  MoeParts parts;  // experts domain-major (per-domain methods) or a single expert
};

// What every method is built with: the structured ones' compensation, for the pooled
// ("agnostic") one the Gram matrices of all domains, and the router's training options.
struct MethodContext {
  Compensation compensation = Compensation::Mean;
  LayerWidths widths = LayerWidths::Uniform;     // neurons and agnostic (the data-driven structured ones)
  double refit_damp = BuildOptions{}.refit_damp;
  std::vector<std::vector<float>> pooled_gram;  // [n_layer][n_ff * n_ff] or empty
  bool sequential = false;                       // neurons and agnostic, with lsq
  RefitTarget refit_target = RefitTarget::Residual;
  double shared_fraction = BuildOptions{}.shared_fraction;  // neurons only
  bool obs_select = false;                                   // neurons only, with lsq
  int64_t refit_tokens = BuildOptions{}.sequential_tokens;
  RefitRows refit_rows = RefitRows::Down;  // with the sequential re-fit
  int refit_rounds = 1;
  RowRefitOptions row_refit;
  ThreadPool* pool = nullptr;
  RouterTrainOptions router;
  // Where finished experts are kept, one sub-directory per method and density, under this key
  // (expert_checkpoint_key): a rerun resumes an interrupted build. Empty: not kept.
  std::string checkpoint_dir, checkpoint_key;
};

// on_progress reports the build as it goes (a method with one expert counts as 1 of 1).
Built build_method(const Model& model, const CalibStats& stats, const MethodContext& ctx, const std::string& method,
                   double density, int K, const std::function<void(const BuildProgress&)>& on_progress = {});

}  // namespace mf::cli
