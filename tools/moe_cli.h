// What generate, perplexity, bench and inspect share for .moe models: loading a dense model
// or a MoE through one path, --domain, and the routing decision as JSON.
#pragma once
#include <memory>
#include <span>
#include <string>

#include <nlohmann/json.hpp>

#include "moe/moe_builder.h"
#include "moe/moe_model.h"
#include "tools/common.h"
#include "tools/progress.h"

namespace mf::cli {

struct LoadedModel {
  std::unique_ptr<Model> dense;  // set for plain models
  std::unique_ptr<MoeModel> moe;  // set for .moe files
  const Model& model() const { return moe ? moe->model() : *dense; }
};

LoadedModel load_any(const ModelOptions& o);

// Adds --domain NAME (a domain, an expert "domain/k", or "dense") to a subcommand.
void add_domain_option(CLI::App* cmd, std::string& domain);

// The routing of a prompt: forced by --domain, else the router's (MoE) or dense (plain
// model; --domain is then an error).
Routing resolve_routing(const LoadedModel& m, const std::string& domain, std::span<const int32_t> prompt, ThreadPool& pool);
const std::vector<LayerWeights>* routed_layers(const LoadedModel& m, const Routing& r);

nlohmann::json routing_json(const LoadedModel& m, const Routing& r);

// How neurons-mode experts choose and re-fit their neurons: --select, --refit, --refit-target,
// --refit-tokens and the shorthands --obs-select and --sequential-refit (build-moe and eval-moe).
struct ExpertQualityOptions {
  std::string select = "auto", refit = "auto", refit_target = "residual";
  bool obs_select = false, sequential_refit = false;  // shorthands for --select obs, --refit sequential
  int64_t refit_tokens = BuildOptions{}.sequential_tokens;
  std::string refit_rows = "auto";  // gate-up with the sequential re-fit, else down
  int refit_rounds = BuildOptions{}.refit_rounds;
  double refit_rows_damp = RowRefitOptions{}.damp;
  int refit_iterations = RowRefitOptions{}.max_iterations;
  // --select and --refit with the shorthands applied.
  std::string select_name() const { return obs_select ? "obs" : select; }
  std::string refit_name() const { return sequential_refit ? "sequential" : refit; }
};
void add_expert_quality_options(CLI::App* cmd, ExpertQualityOptions& o);
// Sets b's row re-fit from --refit-rows, --refit-rounds, --refit-rows-damp and --refit-iterations,
// once b.sequential is known: auto is gate-up with a sequential re-fit and down without one; up
// or gate-up without a sequential re-fit fails.
void apply_refit_rows(const ExpertQualityOptions& o, BuildOptions& b);

// "expert 2/4, layer 12/30": where an expert build is, for progress lines.
std::string build_progress_text(const BuildProgress& p);
// A progress bar over the layers of an expert build, made at its first report (when the
// expert and layer counts are known).
class BuildProgressBar {
 public:
  explicit BuildProgressBar(std::string label) : label_(std::move(label)) {}
  void update(const BuildProgress& p);
  void finish() {
    if (bar_) bar_->finish();
  }

 private:
  std::string label_;
  std::unique_ptr<Progress> bar_;
};

// Adds the router training options (--router-hidden, --router-epochs, ...) to build-moe and eval-moe.
void add_router_train_options(CLI::App* cmd, RouterTrainOptions& o);
// How the router's training went, for --json output and reports.
nlohmann::json router_report_json(const RouterTrainReport& r, const RouterTrainOptions& o);
// One line: "router: 256 hidden units, 30 epochs (kept 27), training accuracy 98.7%, ...".
std::string router_report_line(const RouterTrainReport& r, const RouterTrainOptions& o);

}  // namespace mf::cli
