// moeforge train: runs the moeforge-train executable installed beside this one (libtorch
// lives only there; see CMakeLists.txt for why it is a separate binary).
#include <unistd.h>

#include <filesystem>

#include "core/error.h"
#include "tools/commands.h"
#include "train/train_config.h"

namespace mf::cli {

namespace {

struct TrainOptions {
  std::string config, out;
  bool fresh = false;
};

void run_train(const TrainOptions& o) {
  load_train_config(o.config);  // fail fast, with the same message, before starting torch
  std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe");
  std::string trainer = (self.parent_path() / "moeforge-train").string();
  if (access(trainer.c_str(), X_OK) != 0)
    fail(trainer, ": not found; this moeforge was built without libtorch (install libtorch-dev and rebuild)");
  std::vector<std::string> args = {trainer, "--config", o.config, "--out", o.out};
  if (o.fresh) args.push_back("--fresh");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  execv(trainer.c_str(), argv.data());
  fail(trainer, ": cannot execute");
}

}  // namespace

void add_train(CLI::App& app) {
  auto o = std::make_shared<TrainOptions>();
  CLI::App* cmd = app.add_subcommand("train",
                                     "Train a Llama-architecture LM (AdamW, warm-up + cosine, clipping, accumulation,\n"
                                     "checkpoint/resume, CSV log) and write a Hugging Face directory");
  cmd->add_option("-c,--config", o->config, "JSON training config (see configs/)")->required();
  cmd->add_option("-o,--out", o->out, "Output directory (checkpoint.pt, train_log.csv, then the model)")->required();
  cmd->add_flag("--fresh", o->fresh, "Ignore an existing checkpoint in OUT and start over");
  cmd->callback([o] { run_train(*o); });
}

}  // namespace mf::cli
