// Data-parallel training over torch's c10d (Gloo) on loopback, through the CLI: two ranks of
// batch B give the losses of one rank of batch 2B; a rank that cannot reach its master fails
// with a clear message within the timeout.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <sstream>

#include "test_util.h"

namespace mf {
namespace {

namespace fs = std::filesystem;

std::string write_config(const std::string& dir, int batch, const std::string& model_extra = "") {
  fs::create_directories(dir);
  test::write_file(dir + "/prose.txt",
                   test::read_file(test::shared_dir() + "/data/eval/prose/frankenstein.txt").substr(0, 80000));
  test::write_file(dir + "/math.txt", test::read_file(test::shared_dir() + "/data/eval/gsm8k/train.jsonl").substr(0, 80000));
  const std::string path = dir + "/config-" + std::to_string(batch) + ".json";
  test::write_file(path, R"({
    "tokenizer": "tests/golden/data/tokenizer/moeforge_bpe/tokenizer.json",
    "train": {"prose": ")" + dir + R"(/prose.txt", "math": ")" + dir + R"(/math.txt"},
    "model": {"n_embd": 32, "n_layer": 2, "n_head": 4, "n_head_kv": 2, "n_ff": 64, "n_ctx": 64)" + model_extra + R"(},
    "optim": {"lr": 3e-3, "min_lr": 3e-4, "warmup_steps": 3},
    "batch_size": )" + std::to_string(batch) + R"(, "seq_len": 32, "grad_accum": 2, "steps": 12, "eval_every": 6,
    "eval_batches": 1, "checkpoint_every": 6, "log_every": 1, "threads": 1, "seed": 7
  })");
  return path;
}

// train_loss column of train_log.csv.
std::vector<double> losses(const std::string& log) {
  std::istringstream in(test::read_file(log));
  std::string line;
  std::getline(in, line);  // header
  std::vector<double> out;
  while (std::getline(in, line)) {
    size_t a = line.find(','), b = line.find(',', a + 1), c = line.find(',', b + 1);
    out.push_back(std::stod(line.substr(b + 1, c - b - 1)));
  }
  return out;
}

TEST(DataParallel, TwoRanksOnLoopbackEqualOneRankWithTheDoubledBatch) {
  const std::string dir = test::temp_dir();
  auto one = test::run_cli("train -c " + write_config(dir, 8) + " -o " + dir + "/one --fresh");
  ASSERT_EQ(one.code, 0) << one.err;
  auto two = test::run_cli("train -c " + write_config(dir, 4) + " -o " + dir + "/two --fresh --nproc 2 --threads 1");
  ASSERT_EQ(two.code, 0) << two.err;
  const std::vector<double> a = losses(dir + "/one/train_log.csv"), b = losses(dir + "/two/train_log.csv");
  ASSERT_EQ(a.size(), 12u);
  ASSERT_EQ(b.size(), 12u);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-5) << "step " << i + 1;
  EXPECT_TRUE(fs::exists(dir + "/two/model.safetensors"));
}

// MoE layers too: each rank's load-balancing loss takes the assignment shares of all ranks, so
// the mean gradient is the one-process gradient (dropless routing; capacity is per rank).
TEST(DataParallel, MoeTwoRanksEqualOneRankWithTheDoubledBatch) {
  const std::string dir = test::temp_dir();
  const std::string moe = R"(, "moe": {"n_expert": 4, "top_k": 2, "n_ff_expert": 32, "aux_loss_coef": 0.1})";
  auto one = test::run_cli("train -c " + write_config(dir, 8, moe) + " -o " + dir + "/one --fresh");
  ASSERT_EQ(one.code, 0) << one.err;
  auto two = test::run_cli("train -c " + write_config(dir, 4, moe) + " -o " + dir + "/two --fresh --nproc 2 --threads 1");
  ASSERT_EQ(two.code, 0) << two.err;
  const std::vector<double> a = losses(dir + "/one/train_log.csv"), b = losses(dir + "/two/train_log.csv");
  ASSERT_EQ(a.size(), 12u);
  ASSERT_EQ(b.size(), 12u);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-5) << "step " << i + 1;
}

TEST(DataParallel, UnreachableMasterFailsWithinTheTimeout) {
  const std::string dir = test::temp_dir();
  const auto t0 = std::chrono::steady_clock::now();
  // Port 1 on loopback: nothing listens there.
  auto r = test::run_cli("train -c " + write_config(dir, 4) + " -o " + dir + "/out --rank 1 --world-size 2 --master 127.0.0.1:1 --dist-timeout 2");
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("rank 1 of 2: could not join the group at 127.0.0.1:1 within 2 s"), std::string::npos) << r.err;
  EXPECT_LT(s, 30.0);
  EXPECT_FALSE(fs::exists(dir + "/out"));
}

TEST(DataParallel, BadFlagsAreNamed) {
  const std::string dir = test::temp_dir(), cfg = write_config(dir, 4);
  for (auto [args, needle] : {std::pair{"--rank 2 --world-size 2", "--rank 2 must be in 0..1"},
                              std::pair{"--world-size 2 --master nowhere", "--master 'nowhere' must be ADDR:PORT"},
                              std::pair{"--world-size 2 --master 127.0.0.1:70000", "the port must be in 1..65535"},
                              std::pair{"--nproc 0", "--nproc 0 must be at least 1"},
                              std::pair{"--nproc 2 --world-size 2", "cannot be combined with --world-size"}}) {
    auto r = test::run_cli("train -c " + cfg + " -o " + dir + "/o " + args);
    EXPECT_EQ(r.code, 1) << args;
    EXPECT_NE(r.err.find(needle), std::string::npos) << args << ": " << r.err;
  }
}

}  // namespace
}  // namespace mf
