// moeforge build-moe: carve domain experts and a router out of a dense model into a .moe file.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "calib/fingerprint.h"
#include "core/error.h"
#include "model/throughput.h"
#include "moe/moe_builder.h"
#include "moe/moe_model.h"
#include "tools/commands.h"
#include "tools/common.h"
#include "tools/moe_cli.h"
#include "tools/progress.h"

namespace mf::cli {

namespace {

struct BuildMoeOptions {
  ModelOptions model;
  std::string stats, out, dowp_scale = "energy", score = "activation", compensation = "auto",
              layer_widths = "auto";
  ExpertQualityOptions quality;
  MoeBuildOptions moe;
  int reroute_every = 0;
  bool json = false;
  std::function<std::string(const Model&)> checkpoint_key;  // of the parsed command (expert_checkpoint_key)
};

void run_build_moe(BuildMoeOptions o) {
  check_build_options(o.moe.build);  // before any loading
  if (o.dowp_scale == "none") o.moe.build.dowp_scale = DowpScale::None;
  else if (o.dowp_scale != "energy") fail("--dowp-scale must be none or energy");
  if (o.score == "magnitude") o.moe.build.score = NeuronScore::Magnitude;
  else if (o.score == "random") o.moe.build.score = NeuronScore::Random;
  else if (o.score != "activation") fail("--score must be activation, magnitude or random");
  CalibStats stats = load_calib_stats(o.stats);
  o.moe.build.compensation = parse_compensation(o.compensation, stats);
  o.moe.build.widths = parse_layer_widths(o.layer_widths, o.moe.build.compensation);
  o.moe.build.refit_target = parse_refit_target(o.quality.refit_target);
  o.moe.build.sequential_tokens = o.quality.refit_tokens;
  const bool neurons = o.moe.build.mode == "neurons";
  o.moe.build.obs_select = neurons && parse_neuron_select(o.quality.select_name(), o.moe.build.compensation);
  o.moe.build.sequential = neurons && parse_refit(o.quality.refit_name(), o.moe.build.compensation, stats);
  apply_refit_rows(o.quality, o.moe.build);
  auto model = load(o.model);
  refuse_mode_model(*model, "Free-MoE domain experts");
  ThreadPool pool(o.model.threads);
  o.moe.pool = &pool;
  // Each finished expert is kept beside the output until the .moe is written, so that the same
  // command resumes an interrupted build (a sequential re-fit takes tens of minutes per expert).
  const ExpertCheckpoint checkpoint(o.out + ".checkpoint", o.checkpoint_key(*model));
  o.moe.checkpoint = &checkpoint;
  auto t0 = std::chrono::steady_clock::now();
  BuildProgressBar progress("build experts");
  MoeParts parts = build_moe(*model, stats, o.moe, [&](const BuildProgress& p) { progress.update(p); });
  progress.finish();
  if (!parts.checkpoint_error.empty())
    std::fprintf(stderr, "warning: finished experts not kept for a resume: %s\n", parts.checkpoint_error.c_str());
  if (parts.resumed)
    std::fprintf(stderr, "resumed: %d of %zu experts read from %s/, built by an interrupted run of this command\n",
                 parts.resumed, parts.experts.size(), checkpoint.dir().c_str());
  MoeInfo info;
  info.mode = o.moe.build.mode;
  info.density = o.moe.build.density;
  info.shared_fraction = o.moe.build.shared_fraction;
  info.source_fingerprint = stats.model_fingerprint;
  info.reroute_every = o.reroute_every;
  MoeModel::write(*model, parts.router, parts.experts, info, o.out);
  checkpoint.remove();

  // Report what the experts cost, from the file just written.
  auto moe = MoeModel::load(o.out);
  int64_t file_bytes = int64_t(std::filesystem::file_size(o.out));
  int64_t dense = moe->dense_bytes(), experts = moe->expert_bytes();
  const int64_t dense_ffn = ffn_weight_bytes(moe->model().w.layers);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // What decode can gain: weight bytes read per token with the widest expert in place (the
  // slowest; narrower ones read less) against dense's. Where the FFNs are a small share of them
  // (a large tied vocabulary, as Gemma 3 270M's), narrower FFNs buy little speed.
  const int64_t dense_step = decode_weight_bytes(moe->model());
  int64_t expert_step = 0;
  for (const Expert& e : moe->experts()) expert_step = std::max(expert_step, decode_weight_bytes(moe->model(), &e.layers));
  if (expert_step <= 0) fail(o.out, ": no experts were built");
  nlohmann::json j = {{"out", o.out},
                      {"mode", info.mode},
                      {"density", info.density},
                      {"compensation", o.moe.build.compensation == Compensation::LeastSquares ? "lsq"
                                       : o.moe.build.compensation == Compensation::Mean     ? "mean"
                                                                                            : "none"},
                      {"layer_widths", layer_widths_name(o.moe.build.widths)},
                      {"refit", o.moe.build.compensation != Compensation::LeastSquares ? "none"
                                : o.moe.build.sequential                                ? "sequential"
                                                                                        : "plain"},
                      {"refit_target", o.quality.refit_target},
                      {"refit_rows", refit_rows_name(o.moe.build.refit_rows)},
                      {"refit_rounds", o.moe.build.refit_rounds},
                      {"select", o.moe.build.obs_select ? "obs" : "score"},
                      {"subdomains", o.moe.subdomains},
                      {"experts", parts.experts.size()},
                      {"resumed_experts", parts.resumed},
                      {"file_bytes", file_bytes},
                      {"dense_weight_bytes", dense},
                      {"dense_ffn_bytes", dense_ffn},
                      {"expert_bytes", experts},
                      {"memory_overhead", double(experts) / double(dense)},
                      {"dense_decode_bytes", dense_step},
                      {"expert_decode_bytes", expert_step},
                      {"decode_speedup_bound", double(dense_step) / double(expert_step)},
                      {"router", router_report_json(parts.router_report, o.moe.router)},
                      {"seconds", secs}};
  if (info.mode == "neurons") {  // neurons kept per layer, per expert (they differ with --layer-widths error)
    nlohmann::json widths = nlohmann::json::object();
    for (const Expert& e : parts.experts) {
      std::vector<int64_t> k;
      for (const auto& n : e.neurons) k.push_back(int64_t(n.size()));
      widths[e.name] = k;
    }
    j["expert_widths"] = widths;
  }
  if (o.json) {
    std::printf("%s\n", dump_json(j).c_str());
  } else {
    std::printf("wrote %s: %zu %s experts at density %.2f (%d sub-domain(s) per domain) in %.1f s\n", o.out.c_str(),
                parts.experts.size(), info.mode.c_str(), info.density, o.moe.subdomains, secs);
    std::printf("%s\n", router_report_line(parts.router_report, o.moe.router).c_str());
    std::printf("memory: dense weights %.2f MB, experts %.2f MB (+%.0f%%), file %.2f MB\n", dense / 1e6, experts / 1e6,
                100.0 * double(experts) / double(dense), file_bytes / 1e6);
    std::printf("speed bound: the widest expert reads %.2f MB of weights per decoded token against dense's %.2f (FFNs "
                "%.0f%% of them), so decode with it can be at most %.2fx faster\n",
                expert_step / 1e6, dense_step / 1e6, 100.0 * double(dense_ffn) / double(dense_step),
                double(dense_step) / double(expert_step));
  }
}

}  // namespace

void add_build_moe(CLI::App& app) {
  auto o = std::make_shared<BuildMoeOptions>();
  CLI::App* cmd = app.add_subcommand(
      "build-moe",
      "Carve domain experts out of a dense model from calibration stats, train the multi-level router and\n"
      "write one .moe file (the dense model + experts + router; see docs/moe.md)");
  add_model_options(cmd, o->model);
  cmd->add_option("-s,--stats", o->stats, "Statistics file from moeforge calibrate on this model")->required();
  cmd->add_option("--density", o->moe.build.density, "Fraction of FFN neurons (neurons) or weights (dowp) kept, in (0, 1]")
      ->required();
  cmd->add_option("--subdomains", o->moe.subdomains, "K-means sub-domains (experts) per domain")->check(CLI::Range(1, 256));
  cmd->add_option("--mode", o->moe.build.mode, "neurons (structured, faster) or dowp (unstructured purification)")
      ->check(CLI::IsMember({"neurons", "dowp"}));
  cmd->add_option("--shared-fraction", o->moe.build.shared_fraction,
                  "neurons: part of each expert's neurons chosen from all domains pooled (always-on set)");
  cmd->add_option("--score", o->score, "neurons: importance score: activation (default), magnitude or random (baselines)");
  cmd->add_option("--compensation", o->compensation,
                  "neurons: make up for pruned neurons by lsq (re-fit ffn_down on the kept neurons; needs the\n"
                  "Gram matrices of calibrate --gram), mean (restore their mean output) or none; auto = lsq when\n"
                  "the stats have them, else mean");
  cmd->add_option("--refit-damp", o->moe.build.refit_damp, "lsq: ridge as a fraction of the mean kept second moment")
      ->check(CLI::NonNegativeNumber);
  add_expert_quality_options(cmd, o->quality);
  cmd->add_option("--layer-widths", o->layer_widths,
                  "neurons: neurons per layer: uniform (density * n_ff each), error (the split of the same total\n"
                  "that minimises the summed re-fit error of the FFN outputs; needs lsq), relative (the same with\n"
                  "each layer's error as a fraction of its FFN output energy), or auto = error with lsq");
  cmd->add_option("--dowp-scale", o->dowp_scale, "dowp: rescaling of surviving weights: energy (default) or none");
  cmd->add_option("--threshold", o->moe.threshold, "Router confidence below which the dense model runs");
  cmd->add_option("--reroute-every", o->reroute_every, "Default for generate: re-route every N generated tokens (0: never)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--seed", o->moe.build.seed, "Seed (random baseline)");
  add_router_train_options(cmd, o->moe.router);
  cmd->add_option("-o,--out", o->out, "Output .moe file. Until it is written, finished experts are kept in OUT.checkpoint/: the same\n"
                  "command run again resumes an interrupted build from them")->required();
  cmd->add_flag("--json", o->json, "Print a JSON summary with memory figures");
  cmd->callback([o, cmd] {
    o->checkpoint_key = [o, cmd](const Model& m) { return expert_checkpoint_key(*cmd, o->stats, m); };
    run_build_moe(*o);
  });
}

}  // namespace mf::cli
