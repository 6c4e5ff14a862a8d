// LoRA fine-tuning in the trainer: the base stays bit-identical while the adapter learns, the
// run's loss falls, resume is exact, the exported PEFT directory gives the trainer's logits in
// the engine (--lora), and bad LoRA configs fail before any output.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "engine_logits.h"
#include "formats/safetensors.h"
#include "test_util.h"
#include "train/lora_torch.h"
#include "train/trainer.h"

namespace mf {
namespace {

namespace fs = std::filesystem;
const std::string kBase = "models/default";

TrainConfig lora_config(const std::string& dir, const std::string& lora_json) {
  test::write_file(dir + "/math.txt", test::read_file(test::shared_dir() + "/data/eval/gsm8k/train.jsonl").substr(0, 200000));
  test::write_file(dir + "/config.json", R"({
    "lora": )" + lora_json + R"(,
    "train": {"math": ")" + dir + R"(/math.txt"},
    "optim": {"lr": 5e-3, "min_lr": 5e-4, "warmup_steps": 2, "weight_decay": 0.0},
    "batch_size": 4, "seq_len": 48, "steps": 24, "eval_every": 12, "eval_batches": 1,
    "checkpoint_every": 8, "log_every": 4, "threads": 2, "seed": 5
  })");
  return load_train_config(dir + "/config.json");
}

TEST(LoraTrainer, BaseStaysBitIdenticalWhileTheAdapterLearns) {
  int64_t n_vocab = 0;
  TrainModelConfig mc = model_config_from_hf(kBase, &n_vocab);
  LlamaLM model(mc, n_vocab);
  load_base_weights(model, kBase);
  std::map<std::string, torch::Tensor> before;
  for (auto& p : model->named_parameters()) before[p.key()] = p.value().clone();
  TrainLoraConfig lc;
  lc.base = kBase;
  lc.rank = 4;
  lc.dropout = 0.1;
  auto trainable = attach_lora(model, lc, 3);
  ASSERT_EQ(trainable.size(), size_t(mc.n_layer) * 7 * 2);
  torch::optim::AdamW opt(trainable, torch::optim::AdamWOptions(1e-2));
  auto tokens = torch::randint(0, n_vocab, {2, 17}, torch::TensorOptions().dtype(torch::kInt64));
  for (int step = 0; step < 3; ++step) {
    opt.zero_grad();
    auto logits = model->forward(tokens.narrow(1, 0, 16));  // [2, 16, V]
    auto loss = torch::nn::functional::cross_entropy(logits.reshape({-1, n_vocab}), tokens.narrow(1, 1, 16).reshape({-1}));
    loss.backward();
    opt.step();
  }
  for (auto& p : model->named_parameters()) {
    if (p.key().find(".lora_") != std::string::npos) continue;
    EXPECT_TRUE(torch::equal(p.value(), before.at(p.key()))) << p.key() << " changed";
    EXPECT_FALSE(p.value().grad().defined()) << p.key() << " got a gradient";
  }
  EXPECT_GT(model->model->layers[0]->as<Block>()->self_attn->q_lora.b->weight.abs().max().item<double>(), 0.0)
      << "B should have left zero";
}

TEST(LoraTrainer, RunExportsPeftThatTheEngineRunsWithTheTrainersLogits) {
  const std::string dir = test::temp_dir();
  TrainConfig cfg = lora_config(dir, R"({"base": "models/default", "rank": 4, "alpha": 8, "targets": ["q_proj", "v_proj", "down_proj"]})");
  TrainResult full = run_training(cfg, dir + "/full");
  ASSERT_TRUE(full.finished);
  const double first = (full.train_losses[0] + full.train_losses[1]) / 2, last = (full.train_losses[22] + full.train_losses[23]) / 2;
  EXPECT_LT(last, first - 0.05) << "loss did not fall: " << first << " -> " << last;
  ASSERT_TRUE(fs::exists(dir + "/full/adapter_config.json"));
  ASSERT_FALSE(fs::exists(dir + "/full/model.safetensors"));  // only the adapter is exported

  // Resume: stopping between checkpoints and continuing gives the same adapter.
  TrainRunOptions stop;
  stop.stop_after = 10;
  run_training(cfg, dir + "/resumed", stop);
  TrainResult rest = run_training(cfg, dir + "/resumed");
  ASSERT_TRUE(rest.finished);
  EXPECT_EQ(test::read_file(dir + "/resumed/adapter_model.safetensors"), test::read_file(dir + "/full/adapter_model.safetensors"));

  // The trainer's forward with the exported factors, against the engine's.
  int64_t n_vocab = 0;
  LlamaLM model(model_config_from_hf(kBase, &n_vocab), n_vocab);
  load_base_weights(model, kBase);
  attach_lora(model, cfg.lora, 0);
  SafetensorsCheckpoint ck = SafetensorsCheckpoint::open(dir + "/full/adapter_model.safetensors");
  int copied = 0;
  {
    torch::NoGradGuard g;
    for (auto& p : model->named_parameters()) {
      const SafetensorsTensor* t = ck.find("base_model.model." + p.key());
      if (!t) continue;
      p.value().copy_(torch::from_blob(const_cast<void*>(t->view.data), p.value().sizes(), torch::kFloat32));
      ++copied;
    }
  }
  EXPECT_EQ(copied, 4 * 3 * 2);  // 4 layers x 3 maps x (A, B)
  model->eval();
  const std::vector<int64_t> ids = {1, 200, 37, 4000, 15, 2, 999};
  torch::Tensor ref = model->forward(torch::tensor(ids).unsqueeze(0))[0];  // [T, V]
  EXPECT_LT(test::engine_logit_error(kBase + " --lora " + dir + "/full", ids, ref), 1.0);
}

TEST(LoraTrainer, GateRunTrainsOnlyGatesAndTheEngineRoutesWithThem) {
  const std::string dir = test::temp_dir();
  TrainConfig cfg = lora_config(dir, R"({"base": "models/default", "rank": 4, "alpha": 8, "targets": ["q_proj", "down_proj"]})");
  cfg.steps = 8;
  ASSERT_TRUE(run_training(cfg, dir + "/adapter").finished);
  TrainConfig gate_cfg = lora_config(dir, R"({"base": "models/default", "gates_for": ")" + dir + R"(/adapter"})");
  gate_cfg.steps = 8;
  ASSERT_TRUE(run_training(gate_cfg, dir + "/gated").finished);
  // The factors are the adapter's, unchanged; gates were learned for its maps only.
  SafetensorsCheckpoint a = SafetensorsCheckpoint::open(dir + "/adapter/adapter_model.safetensors");
  SafetensorsCheckpoint b = SafetensorsCheckpoint::open(dir + "/gated/adapter_model.safetensors");
  ASSERT_EQ(a.tensors().size(), b.tensors().size());
  for (const auto& [name, t] : a.tensors())
    EXPECT_EQ(0, std::memcmp(t.view.data, b.find(name)->view.data, t.view.nbytes())) << name;
  SafetensorsCheckpoint g = SafetensorsCheckpoint::open(dir + "/gated/gates.safetensors");
  EXPECT_EQ(g.tensors().size(), 4u * 2);  // 4 layers x (q_proj, down_proj)
  float largest = 0;
  for (const auto& [name, t] : g.tensors())
    for (int64_t i = 0; i < t.view.numel(); ++i) largest = std::max(largest, std::abs(t.view.f32()[i]));
  EXPECT_GT(largest, 0.0f) << "the gates should have moved from zero";
  auto r = test::run_cli("generate -m models/default --lora one=" + dir + "/gated --lora two=" + dir +
                         "/gated --lora-route gates --lora-top-k 1 -p 'Question: 2 + 3' -n 4 --json");
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["lora"]["route"], "gates");
}

TEST(LoraTrainer, BadLoraConfigsFailBeforeWriting) {
  const std::string dir = test::temp_dir();
  auto expect_error = [&](const std::string& lora, const std::string& needle) {
    try {
      TrainConfig cfg = lora_config(dir, lora);
      run_training(cfg, dir + "/out");
      ADD_FAILURE() << "no error for " << lora;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
    EXPECT_FALSE(fs::exists(dir + "/out"));
  };
  expect_error(R"({"base": "models/default", "targets": ["lm_head"]})", "unknown target module 'lm_head'");
  expect_error(R"({"base": "/nonexistent/base"})", "cannot open");
  expect_error(R"({"rank": 4})", "needs 'base'");
  expect_error(R"({"base": "models/default", "rank": 0})", "lora.rank");
  expect_error(R"({"base": "models/default", "gates_for": "/nonexistent/adapter"})", "cannot open");
}

}  // namespace
}  // namespace mf
