#include "tools/moe_cli.h"

#include <cstdio>

#include "core/error.h"

namespace mf::cli {

LoadedModel load_any(const ModelOptions& o) {
  LoadedModel m;
  if (MoeModel::is_moe_file(o.model)) {
    if (!o.tokenizer.empty()) fail("--tokenizer cannot override the tokenizer of a .moe file");
    if (!o.lora.empty()) fail("--lora applies to a base model, not to a carved .moe file");
    m.moe = MoeModel::load(o.model);
  } else {
    m.dense = load(o);
  }
  return m;
}

void add_domain_option(CLI::App* cmd, std::string& domain) {
  cmd->add_option("--domain", domain,
                  "MoE models: force an expert instead of routing: a domain name (its sub-domain chosen by\n"
                  "the router), an expert name like code/1, or 'dense'");
}

Routing resolve_routing(const LoadedModel& m, const std::string& domain, std::span<const int32_t> prompt, ThreadPool& pool) {
  if (!m.moe) {
    if (!domain.empty() && domain != "dense") fail("--domain needs a .moe model (build one with moeforge build-moe)");
    Routing r;
    r.expert_name = "dense";
    r.forced = !domain.empty();
    return r;
  }
  return domain.empty() ? m.moe->route(prompt, pool) : m.moe->force(domain, prompt, pool);
}

const std::vector<LayerWeights>* routed_layers(const LoadedModel& m, const Routing& r) {
  return m.moe ? m.moe->layers(r) : nullptr;
}

void add_expert_quality_options(CLI::App* cmd, ExpertQualityOptions& o) {
  cmd->add_option("--select", o.select,
                  "neurons: how each expert chooses its neurons: obs (structured OBS on the Gram matrices; needs\n"
                  "lsq), score (by activation importance), or auto = obs with lsq, else score");
  cmd->add_flag("--obs-select", o.obs_select, "Shorthand for --select obs");
  cmd->add_option("--refit", o.refit,
                  "neurons + lsq: plain (re-fit ffn_down on the dense model's activations) or sequential (re-fit\n"
                  "layer by layer on the activations of the expert's own pruned earlier layers; runs forward\n"
                  "passes, needs stats from calibrate version 5); auto = sequential when possible, else plain");
  cmd->add_flag("--sequential-refit", o.sequential_refit, "Shorthand for --refit sequential");
  cmd->add_option("--refit-target", o.refit_target,
                  "Sequential re-fit's target: residual (default: the dense residual stream after the layer, which\n"
                  "also corrects the drift left by the expert's earlier layers) or ffn (the dense FFN output)");
  cmd->add_option("--refit-tokens", o.refit_tokens,
                  "Calibration tokens per expert for the sequential re-fit (default " + std::to_string(o.refit_tokens) +
                      "). Fewer build faster,\n"
                  "but the gate-up re-fit then fits the calibration text and loses task accuracy (docs/moe.md)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--refit-rows", o.refit_rows,
                  "Sequential re-fit: which FFN matrices it re-fits toward its target: down (ffn_down and a\n"
                  "bias), up (also the kept ffn_up rows, exact least squares) or gate-up (also a Gauss-Newton\n"
                  "step on the gate rows), each round followed by ffn_down again. auto (default) = gate-up\n"
                  "with the sequential re-fit, else down. gate-up gives the best experts and builds about\n"
                  "3-4 times slower than down (docs/moe.md)")
      ->check(CLI::IsMember({"auto", "down", "up", "gate-up"}));
  cmd->add_option("--refit-rounds", o.refit_rounds, "Rounds of the up or gate-up re-fit (alternating with ffn_down)")
      ->check(CLI::Range(1, 100));
  cmd->add_option("--refit-rows-damp", o.refit_rows_damp,
                  "Up/gate-up re-fit: ridge toward the dense rows, as a fraction of the normal matrix's mean diagonal")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--refit-iterations", o.refit_iterations,
                  "Up/gate-up re-fit: conjugate-gradient iterations per layer and round (more fit the calibration\n"
                  "tokens closer and cost proportionally more)")
      ->check(CLI::Range(1, 10000));
}

void apply_refit_rows(const ExpertQualityOptions& o, BuildOptions& b) {
  b.refit_rows = o.refit_rows == "auto" ? (b.sequential ? RefitRows::GateUp : RefitRows::Down) : parse_refit_rows(o.refit_rows);
  if (b.refit_rows != RefitRows::Down && !b.sequential)
    fail("--refit-rows ", o.refit_rows, " needs the sequential re-fit (--refit sequential, neurons mode, lsq)");
  b.refit_rounds = o.refit_rounds;
  b.row_refit.damp = o.refit_rows_damp;
  b.row_refit.max_iterations = o.refit_iterations;
}

void add_router_train_options(CLI::App* cmd, RouterTrainOptions& o) {
  cmd->add_option("--router-hidden", o.hidden, "Router: hidden ReLU units of the domain classifier (0: linear softmax regression)")
      ->check(CLI::Range(0, 1 << 16));
  cmd->add_option("--router-epochs", o.max_epochs, "Router: training epochs (the learning rate decays to 0 over them)")
      ->check(CLI::Range(1, 100000));
  cmd->add_option("--router-lr", o.learning_rate, "Router: Adam learning rate")->check(CLI::PositiveNumber);
  cmd->add_option("--router-weight-decay", o.weight_decay, "Router: decoupled weight decay (AdamW)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--router-holdout", o.holdout_fraction,
                  "Router: fraction of each domain's calibration samples held out (in contiguous blocks) to measure\n"
                  "its accuracy on samples it did not train on")
      ->check(CLI::Range(0.0, 0.9));
  cmd->add_option("--router-seed", o.seed, "Router: seed of the initial weights, shuffles and sub-domain K-means");
}

nlohmann::json router_report_json(const RouterTrainReport& r, const RouterTrainOptions& o) {
  return {{"hidden", o.hidden},
          {"epochs", r.epochs},
          {"best_epoch", r.best_epoch},
          {"train_samples", r.train_samples},
          {"holdout_samples", r.holdout_samples},
          {"train_accuracy", r.train_accuracy},
          {"holdout_accuracy", r.holdout_accuracy},
          {"holdout_loss", r.holdout_loss},
          {"seconds", r.seconds}};
}

std::string router_report_line(const RouterTrainReport& r, const RouterTrainOptions& o) {
  std::string s = "router: " + (o.hidden > 0 ? std::to_string(o.hidden) + " hidden units" : std::string("linear"));
  char b[256];
  std::snprintf(b, sizeof b, ", %d epochs (kept %d), training accuracy %.1f%% on %lld samples", r.epochs, r.best_epoch,
                100 * r.train_accuracy, (long long)r.train_samples);
  s += b;
  if (r.holdout_samples > 0) {
    std::snprintf(b, sizeof b, ", hold-out %.1f%% on %lld samples", 100 * r.holdout_accuracy, (long long)r.holdout_samples);
    s += b;
  }
  std::snprintf(b, sizeof b, ", %.1f s", r.seconds);
  return s + b;
}

nlohmann::json routing_json(const LoadedModel& m, const Routing& r) {
  nlohmann::json j = {{"expert", r.expert_name}, {"forced", r.forced}};
  if (!m.moe) return j;
  j["domain"] = r.domain.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.domain);
  j["subdomain"] = r.decision.subdomain;
  j["confidence"] = r.decision.confidence;
  j["dense_fallback"] = !r.forced && r.decision.dense;
  j["density"] = r.expert < 0 ? 1.0 : m.moe->info().density;
  if (!r.decision.probs.empty()) {
    nlohmann::json p;
    for (size_t d = 0; d < r.decision.probs.size(); ++d) p[m.moe->router().domains[d]] = r.decision.probs[d];
    j["probs"] = p;
  }
  return j;
}

std::string build_progress_text(const BuildProgress& p) {
  if (p.expert >= p.n_experts) return "expert " + std::to_string(p.n_experts) + "/" + std::to_string(p.n_experts) + " done";
  return "expert " + std::to_string(p.expert + 1) + "/" + std::to_string(p.n_experts) + ", layer " +
         std::to_string(p.layer) + "/" + std::to_string(p.n_layer);
}

void BuildProgressBar::update(const BuildProgress& p) {
  if (!bar_) bar_ = std::make_unique<Progress>(label_, int64_t(p.n_experts) * p.n_layer);
  bar_->update_work(int64_t(p.expert) * p.n_layer + p.layer, p.fraction(), build_progress_text(p));
}

}  // namespace mf::cli
