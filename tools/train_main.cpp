// moeforge-train: the trainer executable (links libtorch; `moeforge train` runs it).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <optional>

#include "core/error.h"
#include "tools/progress.h"
#include "train/trainer.h"

int main(int argc, char** argv) {
  CLI::App app{"moeforge train: train a Llama-architecture LM and write a Hugging Face directory (or, with a lora section, a PEFT adapter of a frozen base; with a mode section, MoDE experts)"};
  std::string config, out, expert;
  bool fresh = false;
  int threads = 0;
  mf::DistOptions dist;
  app.add_option("-c,--config", config, "JSON training config (see configs/)")->required();
  app.add_option("-o,--out", out, "Output directory (checkpoint.pt, train_log.csv, then the model)")->required();
  app.add_flag("--fresh", fresh, "Ignore an existing checkpoint in OUT and start over");
  app.add_option("--expert", expert, "MoDE stage 1: the expert this run trains (a name in mode.experts)");
  app.add_option("--threads", threads, "Torch threads (overrides the config's threads)");
  app.add_option("--rank", dist.rank, "Data-parallel: this process's rank");
  app.add_option("--world-size", dist.world_size, "Data-parallel: number of processes");
  app.add_option("--master", dist.master, "Data-parallel: ADDR:PORT of rank 0's store");
  app.add_option("--dist-timeout", dist.timeout_s, "Data-parallel: seconds to wait for the group");
  app.add_option("--iface", dist.iface, "Data-parallel: network interface for Gloo");
  try {
    app.parse(argc, argv);
    mf::check_dist_options(dist);
    mf::TrainConfig cfg = mf::load_train_config(config);
    if (threads > 0) cfg.threads = threads;
    if (!expert.empty()) mf::select_mode_expert(cfg, expert);
    std::optional<mf::cli::Progress> bar;  // rank 0 speaks for the group
    if (dist.rank == 0) bar.emplace("train", cfg.steps);
    mf::TrainRunOptions run;
    run.resume = !fresh;
    run.dist = dist;
    double shown_tps = 0;  // the trainer measures tokens/s at log steps only; show the latest between them
    run.on_progress = [&](const mf::TrainProgress& p) {
      if (!bar) return;
      if (p.phase != "training") {
        std::fprintf(stderr, "%s...\n", p.phase.c_str());
        return;
      }
      if (p.tokens_per_s > 0) shown_tps = p.tokens_per_s;
      char extra[160];
      std::snprintf(extra, sizeof extra, "loss %.4f lr %.2e %.0f tok/s", p.loss, p.lr, shown_tps);
      std::string line = extra;
      for (auto& [d, l] : p.valid_loss) line += " " + d + " " + std::to_string(l).substr(0, 6);
      bar->update(p.step, line);
    };
    mf::TrainResult r = mf::run_training(cfg, out, run);
    if (dist.rank == 0) {
      bar->finish();
      std::fprintf(stderr, "wrote %s (steps %d..%d)\n", out.c_str(), r.first_step, cfg.steps);
    }
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "moeforge: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
