// moeforge train: runs the moeforge-train executable installed beside this one (libtorch
// lives only there; see CMakeLists.txt for why it is a separate binary). With --nproc N it
// starts N of them as one data-parallel group on this machine (c10d over loopback).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "core/error.h"
#include "tools/commands.h"
#include "train/train_config.h"

namespace mf::cli {

namespace {

struct TrainOptions {
  std::string config, out, expert;
  bool fresh = false;
  int nproc = 1, threads = 0;
  DistOptions dist;  // one rank of a group started elsewhere
};

// A free TCP port on the loopback interface for rank 0's store.
int free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
    fail("cannot find a free loopback port for --nproc");
  const int port = ntohs(a.sin_port);
  close(fd);
  return port;
}

pid_t spawn(const std::vector<std::string>& args) {
  pid_t pid = fork();
  if (pid < 0) fail("cannot start ", args[0]);
  if (pid == 0) {
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(args[0].c_str(), argv.data());
    _exit(127);
  }
  return pid;
}

void run_train(const TrainOptions& o) {
  TrainConfig cfg = load_train_config(o.config);  // fail fast, with the same message, before starting torch
  if (!o.expert.empty()) select_mode_expert(cfg, o.expert);
  check_dist_options(o.dist);
  if (o.nproc < 1) fail("--nproc ", o.nproc, " must be at least 1");
  if (o.nproc > 1 && o.dist.enabled()) fail("--nproc starts a whole group; it cannot be combined with --world-size");
  std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe");
  std::string trainer = (self.parent_path() / "moeforge-train").string();
  if (access(trainer.c_str(), X_OK) != 0)
    fail(trainer, ": not found; this moeforge was built without libtorch (install libtorch-dev and rebuild)");
  std::vector<std::string> args = {trainer, "--config", o.config, "--out", o.out};
  if (o.fresh) args.push_back("--fresh");
  if (!o.expert.empty()) args.insert(args.end(), {"--expert", o.expert});
  if (o.nproc == 1) {
    if (o.threads > 0) args.insert(args.end(), {"--threads", std::to_string(o.threads)});
    if (o.dist.enabled())
      args.insert(args.end(), {"--rank", std::to_string(o.dist.rank), "--world-size", std::to_string(o.dist.world_size),
                               "--master", o.dist.master, "--dist-timeout", std::to_string(o.dist.timeout_s)});
    if (!o.dist.iface.empty()) args.insert(args.end(), {"--iface", o.dist.iface});
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(trainer.c_str(), argv.data());
    fail(trainer, ": cannot execute");
  }
  // A group on this machine: cores shared out unless --threads says otherwise.
  const int threads = o.threads > 0 ? o.threads : std::max(1, int(std::thread::hardware_concurrency()) / o.nproc);
  const std::string master = "127.0.0.1:" + std::to_string(free_port());
  std::vector<pid_t> pids;
  for (int r = 0; r < o.nproc; ++r) {
    std::vector<std::string> a = args;
    a.insert(a.end(), {"--rank", std::to_string(r), "--world-size", std::to_string(o.nproc), "--master", master,
                       "--threads", std::to_string(threads), "--dist-timeout", std::to_string(o.dist.timeout_s)});
    pids.push_back(spawn(a));
  }
  // The first rank to fail stops the others (they would wait on it until the timeout).
  int failed = 0;
  for (size_t left = pids.size(); left > 0; --left) {
    int status = 0;
    pid_t pid = wait(&status);
    const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (!ok && !failed) {
      failed = WIFEXITED(status) ? WEXITSTATUS(status) : 1;
      for (pid_t p : pids)
        if (p != pid) kill(p, SIGTERM);
    }
  }
  if (failed) fail("a training rank failed (exit ", failed, "); see its message above");
}

}  // namespace

void add_train(CLI::App& app) {
  auto o = std::make_shared<TrainOptions>();
  CLI::App* cmd = app.add_subcommand("train",
                                     "Train a Llama-architecture LM (AdamW, warm-up + cosine, clipping, accumulation,\n"
                                     "checkpoint/resume, CSV log) and write a Hugging Face directory; with a \"lora\" section\na PEFT adapter of a frozen base (docs/lora.md); with a \"mode\" section MoDE domain experts\nbeside a frozen backbone (docs/mode.md)");
  cmd->add_option("-c,--config", o->config, "JSON training config (see configs/)")->required();
  cmd->add_option("-o,--out", o->out, "Output directory (checkpoint.pt, train_log.csv, then the model)")->required();
  cmd->add_flag("--fresh", o->fresh, "Ignore an existing checkpoint in OUT and start over");
  cmd->add_option("--expert", o->expert, "MoDE stage 1: the expert (a name in mode.experts) this run trains on its domain");
  cmd->add_option("--threads", o->threads, "Torch threads per process (default: the config's; with --nproc, cores / N)");
  auto* dp = cmd->add_option_group("Data-parallel", "Gradients all-reduced over torch's c10d (Gloo)");
  dp->add_option("--nproc", o->nproc, "Start N processes on this machine as one group (loopback)");
  dp->add_option("--rank", o->dist.rank, "This process's rank in a group spread over machines");
  dp->add_option("--world-size", o->dist.world_size, "Processes in the group");
  dp->add_option("--master", o->dist.master, "ADDR:PORT of rank 0 (it listens there)");
  dp->add_option("--dist-timeout", o->dist.timeout_s, "Seconds to wait for the group before failing (default 60)");
  dp->add_option("--iface", o->dist.iface, "Network interface Gloo uses (e.g. eth0; default: by the master's address)");
  cmd->callback([o] { run_train(*o); });
}

}  // namespace mf::cli
