// MO-CTE's trainability: the Jacobian's top singular value by power iteration against an
// explicit Jacobian, the freezing rule, and a frozen expert's parameters staying put while
// training continues (and across a resume).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "test_util.h"
#include "train/trainability.h"
#include "train/trainer.h"

namespace mf {
namespace {

namespace fs = std::filesystem;

TEST(Trainability, PowerIterationMatchesTheExplicitJacobian) {
  torch::manual_seed(3);
  ExpertMlp expert(3, 2, /*mixtral_names=*/true);  // 18 parameters
  auto x = torch::randn({4, 3});                  // 12 outputs
  // Explicit J [12, 18]: one backward per output.
  std::vector<torch::Tensor> params = expert->parameters();
  auto y = expert(x).reshape({-1});
  std::vector<torch::Tensor> rows;
  for (int64_t i = 0; i < y.numel(); ++i) {
    auto g = torch::autograd::grad({y[i]}, params, {}, /*retain_graph=*/true);
    std::vector<torch::Tensor> flat;
    for (auto& t : g) flat.push_back(t.reshape({-1}));
    rows.push_back(torch::cat(flat));
  }
  auto J = torch::stack(rows).to(torch::kFloat64);  // [12, 18]
  const double want = torch::linalg_svdvals(J)[0].item<double>();
  const double got = jacobian_top_singular_value(expert, x, 60, 11);
  EXPECT_NEAR(got, want, 1e-4 * want) << "power iteration " << got << ", SVD " << want;
  // A zero input has a zero Jacobian with respect to every parameter? No: down's gradient is
  // silu(0)*0 = 0 and gate/up's are 0, so sigma is 0.
  EXPECT_NEAR(jacobian_top_singular_value(expert, torch::zeros({2, 3}), 5, 1), 0.0, 1e-12);
}

TEST(Trainability, FreezerNeedsAWindowOfLowChecksInARow) {
  ExpertFreezer f(1, 2, /*threshold=*/0.5, /*window=*/2);  // below half of the peak so far
  EXPECT_FALSE(f.observe(0, 0, 1.0));  // the reference
  EXPECT_FALSE(f.observe(0, 0, 0.4));
  EXPECT_FALSE(f.observe(0, 0, 2.0));  // the run restarts
  EXPECT_FALSE(f.observe(0, 0, 0.4));
  EXPECT_TRUE(f.observe(0, 0, 0.4));
  EXPECT_TRUE(f.frozen(0, 0));
  EXPECT_FALSE(f.observe(0, 0, 0.1));  // already frozen
  EXPECT_FALSE(f.frozen(0, 1));
  EXPECT_EQ(f.n_frozen(), 1);
}

TEST(Trainability, FrozenExpertStopsChangingUnderAdamW) {
  TrainModelConfig c;
  c.n_embd = 8;
  c.n_ff = 12;
  c.moe.n_expert = 2;
  c.moe.top_k = 2;
  MoeFfn moe(c);
  ExpertMlp frozen(moe->experts->ptr<ExpertMlpImpl>(0));
  freeze_expert(frozen);
  auto before0 = frozen->gate->weight.clone();
  auto before1 = moe->experts[1]->as<ExpertMlp>()->gate->weight.clone();
  torch::optim::AdamW opt(moe->parameters(), torch::optim::AdamWOptions(1e-2).weight_decay(0.1));
  for (int i = 0; i < 3; ++i) {
    opt.zero_grad();
    moe(torch::randn({2, 5, 8})).pow(2).sum().backward();
    opt.step();
  }
  EXPECT_TRUE(torch::equal(frozen->gate->weight, before0));
  EXPECT_FALSE(torch::equal(moe->experts[1]->as<ExpertMlp>()->gate->weight, before1));
}

// In a training run with a high threshold every expert with tokens freezes after the window;
// the checks are logged with their cost, and a resumed run keeps the frozen experts frozen
// (the same final weights as an uninterrupted run).
TEST(Trainability, TrainingLogsChecksFreezesAndResumesExactly) {
  const std::string dir = test::temp_dir();
  test::write_file(dir + "/prose.txt",
                   test::read_file(test::shared_dir() + "/data/eval/prose/frankenstein.txt").substr(0, 60000));
  test::write_file(dir + "/config.json", R"({
    "tokenizer": "tests/golden/data/tokenizer/moeforge_bpe/tokenizer.json",
    "train": {"prose": ")" + dir + R"(/prose.txt"},
    "model": {"n_embd": 32, "n_layer": 2, "n_head": 4, "n_head_kv": 2, "n_ff": 64, "n_ctx": 64,
              "moe": {"n_expert": 4, "top_k": 2, "n_ff_expert": 32, "trainability_every": 2, "trainability_iterations": 4,
                      "trainability_tokens": 32, "freeze_threshold": 1e9, "freeze_window": 2}},
    "optim": {"lr": 3e-3, "min_lr": 3e-4, "warmup_steps": 2},
    "batch_size": 4, "seq_len": 32, "steps": 10, "eval_every": 10, "eval_batches": 1,
    "checkpoint_every": 3, "log_every": 2, "threads": 2, "seed": 7
  })");
  TrainConfig cfg = load_train_config(dir + "/config.json");
  TrainResult full = run_training(cfg, dir + "/full");
  ASSERT_TRUE(full.finished);
  EXPECT_GT(full.trainability_seconds, 0.0);
  const std::string csv = test::read_file(dir + "/full/trainability.csv");
  EXPECT_EQ(csv.rfind("step,layer,expert,tokens,sigma,frozen_now,check_seconds\n", 0), 0u);
  EXPECT_NE(csv.find(",1,"), std::string::npos) << "no expert froze:\n" << csv;
  TrainRunOptions stop;
  stop.stop_after = 5;  // after the freeze at step 4
  run_training(cfg, dir + "/resumed", stop);
  TrainResult rest = run_training(cfg, dir + "/resumed");
  ASSERT_TRUE(rest.finished);
  EXPECT_EQ(test::read_file(dir + "/resumed/model.safetensors"), test::read_file(dir + "/full/model.safetensors"));
}

// An expert routed fewer sample tokens than trainability_min_tokens gives no check: with the
// minimum above any expert's share, nothing is measured and nothing freezes, whatever the threshold.
TEST(Trainability, ExpertsWithTooFewTokensAreNotChecked) {
  const std::string dir = test::temp_dir();
  test::write_file(dir + "/prose.txt",
                   test::read_file(test::shared_dir() + "/data/eval/prose/frankenstein.txt").substr(0, 60000));
  auto config = [&](int min_tokens) {
    const std::string path = dir + "/config-" + std::to_string(min_tokens) + ".json";
    test::write_file(path, R"({
    "tokenizer": "tests/golden/data/tokenizer/moeforge_bpe/tokenizer.json",
    "train": {"prose": ")" + dir + R"(/prose.txt"},
    "model": {"n_embd": 32, "n_layer": 2, "n_head": 4, "n_head_kv": 2, "n_ff": 64, "n_ctx": 64,
              "moe": {"n_expert": 4, "top_k": 2, "n_ff_expert": 32, "trainability_every": 2, "trainability_iterations": 2,
                      "trainability_tokens": 256, "trainability_min_tokens": )" + std::to_string(min_tokens) + R"(,
                      "freeze_threshold": 1e9, "freeze_window": 1}},
    "optim": {"lr": 3e-3, "min_lr": 3e-4, "warmup_steps": 2},
    "batch_size": 4, "seq_len": 32, "steps": 4, "eval_every": 4, "eval_batches": 1,
    "checkpoint_every": 4, "log_every": 2, "threads": 2, "seed": 7
  })");
    return load_train_config(path);
  };
  // 4 x 32 sample tokens, 2 experts each: 256 assignments over 4 experts, none reaches 200.
  ASSERT_TRUE(run_training(config(200), dir + "/none").finished);
  const std::string none = fs::exists(dir + "/none/trainability.csv") ? test::read_file(dir + "/none/trainability.csv") : "";
  EXPECT_LE(std::count(none.begin(), none.end(), '\n'), 1) << "checks logged:\n" << none;  // at most the header
  ASSERT_TRUE(run_training(config(1), dir + "/all").finished);
  EXPECT_NE(test::read_file(dir + "/all/trainability.csv").find(",1,"), std::string::npos);  // the same run with checks freezes
}

}  // namespace
}  // namespace mf
