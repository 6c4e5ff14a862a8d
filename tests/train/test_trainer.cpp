// The trainer: loss falls, resume is exact, the export loads in the engine with the same
// logits as the trainer's own forward, and bad input fails before any output is written.
#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "engine_logits.h"
#include "test_util.h"
#include "train/export.h"
#include "train/trainer.h"

namespace mf {
namespace {

namespace fs = std::filesystem;

// A tiny two-domain run on fixture text (tokenizer trained by moeforge, golden-checked).
TrainConfig tiny_config(const std::string& dir) {
  std::string prose = test::read_file(test::shared_dir() + "/data/eval/prose/frankenstein.txt").substr(0, 120000);
  std::string math = test::read_file(test::shared_dir() + "/data/eval/gsm8k/train.jsonl").substr(0, 120000);
  test::write_file(dir + "/prose.txt", prose);
  test::write_file(dir + "/math.txt", math);
  std::string cfg = R"({
    "tokenizer": "tests/golden/data/tokenizer/moeforge_bpe/tokenizer.json",
    "train": {"prose": ")" + dir + R"(/prose.txt", "math": ")" + dir + R"(/math.txt"},
    "model": {"n_embd": 32, "n_layer": 2, "n_head": 4, "n_head_kv": 2, "n_ff": 64, "n_ctx": 64},
    "optim": {"lr": 3e-3, "min_lr": 3e-4, "warmup_steps": 3},
    "batch_size": 4, "seq_len": 32, "grad_accum": 2, "steps": 12, "eval_every": 6, "eval_batches": 1,
    "checkpoint_every": 4, "log_every": 2, "threads": 2, "seed": 7
  })";
  test::write_file(dir + "/config.json", cfg);
  return load_train_config(dir + "/config.json");
}

TEST(Trainer, LossFallsAndResumeIsExact) {
  std::string dir = test::temp_dir();
  TrainConfig cfg = tiny_config(dir);
  cfg.steps = 30;
  TrainResult full = run_training(cfg, dir + "/full");
  ASSERT_TRUE(full.finished);
  ASSERT_EQ(full.train_losses.size(), 30u);
  double first = (full.train_losses[0] + full.train_losses[1]) / 2, last = (full.train_losses[28] + full.train_losses[29]) / 2;
  EXPECT_LT(last, first - 0.5) << "loss did not fall: " << first << " -> " << last;
  EXPECT_TRUE(fs::exists(dir + "/full/model.safetensors"));

  TrainRunOptions interrupted;
  interrupted.stop_after = 13;  // between checkpoints: the stop itself writes one
  TrainResult a = run_training(cfg, dir + "/resumed", interrupted);
  EXPECT_FALSE(a.finished);
  TrainResult b = run_training(cfg, dir + "/resumed");
  ASSERT_EQ(b.first_step, 14);
  ASSERT_EQ(a.train_losses.size() + b.train_losses.size(), 30u);
  for (size_t i = 0; i < a.train_losses.size(); ++i) EXPECT_EQ(a.train_losses[i], full.train_losses[i]) << "step " << i + 1;
  for (size_t i = 0; i < b.train_losses.size(); ++i) EXPECT_EQ(b.train_losses[i], full.train_losses[13 + i]) << "step " << 14 + i;
  EXPECT_EQ(test::read_file(dir + "/resumed/model.safetensors"), test::read_file(dir + "/full/model.safetensors"));
}

// The learning rates logged per step, as written.
std::vector<std::string> logged_lrs(const std::string& run) {
  std::vector<std::string> out;
  std::istringstream log(test::read_file(run + "/train_log.csv"));
  std::string line;
  std::getline(log, line);  // header: step,lr,...
  while (std::getline(log, line)) {
    const size_t a = line.find(','), b = line.find(',', a + 1);
    out.push_back(line.substr(a + 1, b - a - 1));
  }
  return out;
}

// Two runs of half the steps, the second starting where the first ends in one schedule, log
// the learning rates of one run of all the steps (upcycling continues a dense run this way).
TEST(Trainer, ARunCanContinueAnotherRunsSchedule) {
  std::string dir = test::temp_dir();
  TrainConfig cfg = tiny_config(dir);
  cfg.log_every = 1;
  run_training(cfg, dir + "/whole");
  TrainConfig first = cfg, second = cfg;
  first.steps = second.steps = 6;
  first.optim.schedule_steps = second.optim.schedule_steps = 12;
  second.optim.schedule_start = 6;
  run_training(first, dir + "/first");
  run_training(second, dir + "/second");
  std::vector<std::string> halves = logged_lrs(dir + "/first"), rest = logged_lrs(dir + "/second");
  halves.insert(halves.end(), rest.begin(), rest.end());
  const std::vector<std::string> whole = logged_lrs(dir + "/whole");
  ASSERT_EQ(whole.size(), 12u);
  EXPECT_EQ(halves, whole);
  EXPECT_NE(whole[6], logged_lrs(dir + "/first")[0]);  // the second half did not restart the warmup
}

TEST(Trainer, ExportedModelGivesTheTrainersLogitsInTheEngine) {
  std::string dir = test::temp_dir();
  TrainConfig cfg = tiny_config(dir);
  for (bool tied : {true, false}) {
    cfg.model.tied_embeddings = tied;
    LlamaLM model(cfg.model, 1500);
    model->init_weights(11);
    std::string out = dir + (tied ? "/tied" : "/untied");
    export_hf(model, cfg.tokenizer, out);
    std::vector<int64_t> ids = {0, 5, 300, 1499, 42, 7, 7, 1000, 3};
    torch::NoGradGuard guard;
    auto ref = model->forward(torch::tensor(ids).unsqueeze(0))[0];  // [T, V]
    EXPECT_LE(test::engine_logit_error(out, ids, ref), 1.0) << (tied ? "tied" : "untied") << ": logits differ beyond 1e-4";
  }
}

void expect_fails_without_output(const TrainConfig& cfg, const std::string& out, const std::string& needle) {
  try {
    run_training(cfg, out);
    ADD_FAILURE() << "expected failure containing " << needle;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(out)) << "partial output directory left behind";
}

TEST(Trainer, BadInputFailsCleanly) {
  std::string dir = test::temp_dir();
  TrainConfig cfg = tiny_config(dir);
  test::write_file(dir + "/empty.txt", "");
  test::write_file(dir + "/latin1.txt", std::string(200, 'a') + "\xe9t\xe9");
  TrainConfig bad = cfg;
  bad.train["code"] = dir + "/empty.txt";
  expect_fails_without_output(bad, dir + "/o1", "empty");
  bad.train["code"] = dir + "/latin1.txt";
  expect_fails_without_output(bad, dir + "/o2", "not valid UTF-8");

  auto config_error = [&](const std::string& json, const std::string& needle) {
    test::write_file(dir + "/bad.json", json);
    try {
      load_train_config(dir + "/bad.json");
      ADD_FAILURE() << "accepted " << json;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  config_error(R"({"tokenizer": "t", "train": {"a": "b"}, "stepz": 3})", "unknown key 'stepz'");
  config_error(R"({"tokenizer": "t", "train": {"a": "b"}, "model": {"n_embd": 30, "n_head": 4}})", "not a multiple");
  config_error(R"({"tokenizer": "t", "train": {"a": "b"}, "model": {"n_layers": 3}})", "unknown key 'model.n_layers'");
  config_error(R"({"tokenizer": "t", "train": {"a": "b"}, "seq_len": 4096})", "exceeds model.n_ctx");
  config_error(R"({"tokenizer": "t", "train": {"a": "b"}, "steps": "ten"})", "wrong type");
  config_error(R"({"tokenizer": "t", "train": {"a": "b"}, "steps": 10, "optim": {"schedule_start": 5, "schedule_steps": 12}})",
               "optim.schedule_steps 12 is shorter than schedule_start + steps (15)");

  // A corrupted checkpoint is named, not crashed on.
  TrainRunOptions stop;
  stop.stop_after = 2;
  run_training(cfg, dir + "/ck", stop);
  std::string ck = test::read_file(dir + "/ck/checkpoint.pt");
  test::write_file(dir + "/ck/checkpoint.pt", ck.substr(0, ck.size() / 2));
  try {
    run_training(cfg, dir + "/ck");
    ADD_FAILURE() << "corrupted checkpoint accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("corrupted checkpoint"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace mf
