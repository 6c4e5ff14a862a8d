// moeforge bench: prefill and decode throughput, medians over repetitions.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>

#include "core/error.h"
#include "tools/commands.h"
#include "tools/common.h"
#include "tools/moe_cli.h"
#include "model/routing_report.h"
#include "model/throughput.h"
#include "tools/progress.h"

namespace mf::cli {

namespace {

struct BenchOptions {
  ModelOptions model;
  int n_prompt = 128;
  int n_gen = 64;
  int reps = 5;
  std::string domain;
  bool json = false;
};

void run_bench(const BenchOptions& o) {
  LoadedModel lm = load_any(o.model);
  const Model* model = &lm.model();
  ThreadPool pool(o.model.threads);
  // A MoE runs the expert --domain names; without it, the dense model.
  Routing routing = resolve_routing(lm, o.domain.empty() ? "dense" : o.domain, {}, pool);
  const std::vector<LayerWeights>* layers = routed_layers(lm, routing);
  ThroughputOptions to;
  to.n_prompt = o.n_prompt;
  to.n_gen = o.n_gen;
  to.reps = o.reps;
  Progress progress("bench", o.reps + 1);
  Throughput t = measure_throughput(*model, {layers}, to, pool, [&](int done, int) { progress.update(done); })[0];
  progress.finish();
  const std::vector<double>& prefill_tps = t.prefill_all;
  const std::vector<double>& decode_tps = t.decode_all;
  double pp = t.prefill_tps, tg = t.decode_tps;
  int64_t bytes = t.decode_weight_bytes;
  if (o.json) {
    nlohmann::json j = {{"model", o.model.model},     {"threads", pool.size()},  {"prompt_tokens", o.n_prompt},
                        {"gen_tokens", o.n_gen},       {"reps", o.reps},          {"prefill_tps", pp},
                        {"decode_tps", tg},            {"prefill_tps_all", prefill_tps}, {"decode_tps_all", decode_tps},
                        {"decode_weight_bytes", bytes}, {"decode_gbps", tg * double(bytes) / 1e9},
                        {"expert", routing.expert_name}};
    if (model->hp.n_expert > 0)  // a token-routed MoE: how it routed during the measured runs
      j["routing"] = {{"params", routing_params_json(model->routing)},
                      {"prefill", routing_stats_json(t.prefill_routing)},
                      {"decode", routing_stats_json(t.decode_routing)}};
    if (nlohmann::json l = lora_json(*model); !l.is_null()) j["lora"] = l;
    std::printf("%s\n", dump_json(j).c_str());
  } else {
    std::printf("model %s  threads %d\n", o.model.model.c_str(), pool.size());
    std::printf("prefill %d tokens: %.2f tok/s (median of %d)\n", o.n_prompt, pp, o.reps);
    std::printf("decode  %d tokens: %.2f tok/s (median of %d), %.2f GB/s of weights\n", o.n_gen, tg, o.reps,
                tg * double(bytes) / 1e9);
    if (model->hp.n_expert > 0)
      std::printf("experts per token: prefill %.2f, decode %.2f of %d (active weights per decode token %.1f MB)\n",
                  mean_experts_used(t.prefill_routing), mean_experts_used(t.decode_routing), model->hp.n_expert,
                  double(bytes) / 1e6);
  }
}

}  // namespace

void add_bench(CLI::App& app) {
  auto o = std::make_shared<BenchOptions>();
  CLI::App* cmd = app.add_subcommand("bench", "Measure prefill and decode tokens/s (medians over repetitions)");
  add_model_options(cmd, o->model);
  cmd->add_option("-p,--prompt-tokens", o->n_prompt, "Prompt tokens for the prefill test")->check(CLI::NonNegativeNumber);
  cmd->add_option("-n,--gen-tokens", o->n_gen, "Tokens for the decode test")->check(CLI::NonNegativeNumber);
  cmd->add_option("-r,--reps", o->reps, "Repetitions (after one warm-up)")->check(CLI::PositiveNumber);
  cmd->add_option("--domain", o->domain, "MoE models: the expert to measure (a domain, domain/k or 'dense'; default dense)");
  cmd->add_flag("--json", o->json, "Print {\"prefill_tps\", \"decode_tps\", ...} as JSON");
  cmd->callback([o] { run_bench(*o); });
}

}  // namespace mf::cli
