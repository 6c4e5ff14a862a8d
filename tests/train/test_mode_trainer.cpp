// MoDE in the trainer: the backbone stays bit-identical, stage 1 of two experts gives the same
// experts run as two processes at once or one after the other, resume is exact, stage 2 trains
// the gates only (unless asked), the engine's logits on the exports equal the trainer's, and
// bad MoDE configs (blocks that do not divide the layers, experts of another backbone, a
// missing expert) fail with the problem named before any output.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "engine_logits.h"
#include "formats/safetensors.h"
#include "test_util.h"
#include "train/lora_torch.h"
#include "train/mode_torch.h"
#include "train/trainer.h"

namespace mf {
namespace {

namespace fs = std::filesystem;
const std::string kBackbone = "models/default";

// DIR/{prose,math}.txt and DIR/NAME.json with the given "mode" object; returns the config path.
std::string write_mode_config(const std::string& dir, const std::string& name, const std::string& mode_json, int steps = 8) {
  fs::create_directories(dir);
  if (!fs::exists(dir + "/prose.txt")) {
    test::write_file(dir + "/prose.txt", test::read_file(test::shared_dir() + "/data/eval/prose/frankenstein.txt").substr(0, 60000));
    test::write_file(dir + "/math.txt", test::read_file(test::shared_dir() + "/data/eval/gsm8k/train.jsonl").substr(0, 60000));
  }
  const std::string path = dir + "/" + name + ".json";
  test::write_file(path, R"({
    "mode": )" + mode_json + R"(,
    "train": {"prose": ")" + dir + R"(/prose.txt", "math": ")" + dir + R"(/math.txt"},
    "optim": {"lr": 3e-3, "min_lr": 3e-4, "warmup_steps": 2, "weight_decay": 0.0},
    "batch_size": 2, "seq_len": 32, "steps": )" + std::to_string(steps) + R"(, "eval_every": 4, "eval_batches": 1,
    "checkpoint_every": 3, "log_every": 2, "threads": 2, "seed": 11
  })");
  return path;
}

const char* kStageOne = R"({"backbone": "models/default", "experts": ["prose", "math"], "blocks": 2, "layers_per_expert": 1})";

TrainConfig stage_one(const std::string& dir, const std::string& expert) {
  TrainConfig cfg = load_train_config(write_mode_config(dir, "stage1", kStageOne));
  select_mode_expert(cfg, expert);
  return cfg;
}

// The trainer's model of a finished run: the backbone with the run's MoDE layout, its
// parameters read back from the export (so the comparison covers the export's names too).
LlamaLM trainer_model(const TrainConfig& cfg, const std::string& out) {
  int64_t n_vocab = 0;
  LlamaLM model(model_config_from_hf(kBackbone, &n_vocab), n_vocab);
  model->mode = model->register_module("mode", std::make_shared<ModeImpl>(model->cfg, cfg.mode, cfg.mode.run_experts()));
  SafetensorsCheckpoint ck = SafetensorsCheckpoint::open(out);
  torch::NoGradGuard g;
  for (auto& p : model->named_parameters()) {
    const SafetensorsTensor* t = ck.find(mode_export_name(model, p.key()));
    EXPECT_TRUE(t) << mode_export_name(model, p.key()) << " missing from the export";
    if (t) p.value().copy_(torch::from_blob(const_cast<void*>(t->view.data), p.value().sizes(), torch::kFloat32));
  }
  model->eval();
  return model;
}

std::vector<std::string> tensor_bytes_differing(const std::string& a_path, const std::string& b_path, const std::string& prefix) {
  SafetensorsCheckpoint a = SafetensorsCheckpoint::open(a_path), b = SafetensorsCheckpoint::open(b_path);
  std::vector<std::string> differ;
  for (const auto& [name, t] : a.tensors()) {
    if (name.rfind(prefix, 0) != 0) continue;
    const SafetensorsTensor* u = b.find(name);
    if (!u || u->view.nbytes() != t.view.nbytes() || std::memcmp(u->view.data, t.view.data, t.view.nbytes()) != 0)
      differ.push_back(name);
  }
  return differ;
}

const std::vector<int64_t> kIds = {1, 200, 37, 4000, 15, 2, 999, 31};

TEST(ModeTrainer, StageOneKeepsTheBackboneResumesExactlyAndTheEngineGivesTheTrainersLogits) {
  const std::string dir = test::temp_dir();
  TrainConfig cfg = stage_one(dir, "math");
  TrainResult full = run_training(cfg, dir + "/math");
  ASSERT_TRUE(full.finished);
  // Every backbone tensor is bit-identical to the backbone's file (the expert layers come after
  // its 4 layers, the gates under model.mode_gates).
  SafetensorsCheckpoint out = SafetensorsCheckpoint::open(dir + "/math"), base = SafetensorsCheckpoint::open(kBackbone);
  for (const auto& [name, t] : base.tensors()) {
    const SafetensorsTensor* u = out.find(name);
    ASSERT_TRUE(u) << name;
    EXPECT_EQ(0, std::memcmp(u->view.data, t.view.data, t.view.nbytes())) << name << " changed";
  }
  EXPECT_TRUE(out.find("model.layers.5.self_attn.q_proj.weight"));  // block 1's expert layer
  EXPECT_TRUE(out.find("model.mode_gates.1.bias"));
  EXPECT_FALSE(out.find("model.layers.6.self_attn.q_proj.weight"));
  EXPECT_TRUE(fs::exists(dir + "/math/gates_by_domain.csv"));

  // Resume: stopping between checkpoints and continuing gives the same export.
  TrainRunOptions stop;
  stop.stop_after = 4;
  run_training(cfg, dir + "/resumed", stop);
  ASSERT_TRUE(run_training(cfg, dir + "/resumed").finished);
  EXPECT_EQ(test::read_file(dir + "/resumed/model.safetensors"), test::read_file(dir + "/math/model.safetensors"));

  LlamaLM model = trainer_model(cfg, dir + "/math");
  torch::Tensor ref = model->forward(torch::tensor(kIds).unsqueeze(0))[0];  // [T, V]
  EXPECT_LT(test::engine_logit_error(dir + "/math", kIds, ref), 1.0);
  // The backbone alone is the original model, exactly.
  std::string list;
  for (auto id : kIds) list += (list.empty() ? "" : ",") + std::to_string(id);
  auto alone = test::run_cli("logits --f32 -m " + dir + "/math --mode-expert backbone --tokens " + list);
  auto orig = test::run_cli("logits --f32 -m " + kBackbone + " --tokens " + list);
  ASSERT_EQ(alone.code, 0) << alone.err;
  EXPECT_EQ(nlohmann::json::parse(alone.out)["logits"], nlohmann::json::parse(orig.out)["logits"]);
}

TEST(ModeTrainer, TwoStageOneProcessesGiveTheExpertsOfOneAfterTheOther) {
  const std::string dir = test::temp_dir();
  const std::string cfg = write_mode_config(dir, "stage1", kStageOne, 4);
  const char* bin = std::getenv("MOEFORGE_BIN");
  const std::string exe = bin ? bin : "build/bin/moeforge";
  auto train = [&](const std::string& expert, const std::string& out) {
    return exe + " train -c " + cfg + " --expert " + expert + " -o " + out + " 2>/dev/null";
  };
  // At once, as two processes (two machines would be two such commands).
  ASSERT_EQ(0, std::system(("( " + train("prose", dir + "/par/prose") + " ) & ( " + train("math", dir + "/par/math") +
                            " ); wait $!; wait").c_str()));
  for (const char* e : {"prose", "math"}) {  // one after the other, in this process
    TrainConfig c = load_train_config(cfg);
    select_mode_expert(c, e);
    ASSERT_TRUE(run_training(c, dir + "/seq/" + e).finished);
  }
  for (const char* e : {"prose", "math"}) {
    ASSERT_TRUE(fs::exists(dir + "/par/" + e + "/model.safetensors")) << e;
    EXPECT_EQ(test::read_file(dir + "/par/" + e + "/model.safetensors"), test::read_file(dir + "/seq/" + e + "/model.safetensors"))
        << e;
  }
}

TEST(ModeTrainer, StageTwoTrainsTheGatesOfTheComposedExpertsAndTheEngineMatches) {
  const std::string dir = test::temp_dir();
  for (const char* e : {"prose", "math"}) ASSERT_TRUE(run_training(stage_one(dir, e), dir + "/" + e).finished);
  for (const std::string gate : {"\"dense\"", "\"top_k\", \"gate_top_k\": 2"}) {
    const std::string out = dir + "/composed" + std::to_string(gate.size());
    TrainConfig cfg = load_train_config(write_mode_config(
        dir, "stage2",
        R"({"backbone": "models/default", "experts": ["prose", "math"], "blocks": 2, "layers_per_expert": 1, "stage": 2,
            "gate": )" + gate + R"(, "expert_dirs": {"prose": ")" + dir + R"(/prose", "math": ")" + dir + R"(/math"}})"));
    ASSERT_TRUE(run_training(cfg, out).finished);
    // The experts are their stage-1 selves: prose's layers are 4 and 5, math's 6 and 7 here,
    // 4 and 5 in its own run.
    SafetensorsCheckpoint composed = SafetensorsCheckpoint::open(out), math = SafetensorsCheckpoint::open(dir + "/math");
    for (const auto& [name, t] : math.tensors()) {
      for (int l : {4, 5}) {
        const std::string from = "model.layers." + std::to_string(l) + ".";
        if (name.rfind(from, 0) != 0) continue;
        const SafetensorsTensor* u = composed.find("model.layers." + std::to_string(l + 2) + "." + name.substr(from.size()));
        ASSERT_TRUE(u) << name;
        EXPECT_EQ(0, std::memcmp(u->view.data, t.view.data, t.view.nbytes())) << name << " changed in stage 2";
      }
    }
    EXPECT_TRUE(tensor_bytes_differing(out + "/model.safetensors", dir + "/math/model.safetensors", "model.layers.0.").empty());
    LlamaLM model = trainer_model(cfg, out);
    torch::Tensor ref = model->forward(torch::tensor(kIds).unsqueeze(0))[0];  // [T, V]
    EXPECT_LT(test::engine_logit_error(out, kIds, ref), 1.0) << gate;
    auto r = test::run_cli("generate -m " + out + " --mode-expert prose -p 'Question: 2 + 3' -n 3");
    EXPECT_EQ(r.code, 0) << r.err;
  }
}

TEST(ModeTrainer, BadModeConfigsFailNamingTheProblemBeforeWriting) {
  const std::string dir = test::temp_dir();
  ASSERT_TRUE(run_training(stage_one(dir, "prose"), dir + "/prose").finished);
  auto expect_error = [&](const std::string& mode, const std::string& needle, const std::string& expert = "") {
    try {
      TrainConfig cfg = load_train_config(write_mode_config(dir, "bad", mode));
      if (!expert.empty()) select_mode_expert(cfg, expert);
      run_training(cfg, dir + "/out");
      ADD_FAILURE() << "no error for " << mode;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
    EXPECT_FALSE(fs::exists(dir + "/out"));
  };
  expect_error(R"({"backbone": "models/default", "experts": ["prose"], "blocks": 3})", "mode.blocks 3 does not divide the backbone's 4 layers");
  expect_error(R"({"backbone": "models/default", "experts": ["prose", "math"]})", "pass --expert NAME");
  expect_error(R"({"backbone": "models/default", "experts": ["prose"], "gate_init": 1.0})", "'mode.gate_init' must lie in (0, 1)");
  expect_error(R"({"backbone": "models/default", "experts": ["prose", "math"]})", "--expert 'code' is not in mode.experts", "code");
  expect_error(R"({"backbone": "models/default", "experts": ["code"]})", "mode.experts names 'code', which 'train' has no file for");
  expect_error(R"({"backbone": "models/default", "experts": ["prose", "math"], "stage": 2, "expert_dirs": {"prose": ")" + dir +
                   R"(/prose"}})",
               "stage 2 needs mode.expert_dirs.math");
  expect_error(R"({"backbone": "models/default", "experts": ["prose", "math"], "stage": 2, "expert_dirs": {"prose": ")" + dir +
                   R"(/prose", "math": "/nonexistent/math"}})",
               "/nonexistent/math/config.json: cannot open");
  // An expert trained for another backbone: the same shape, other weights.
  const std::string other = dir + "/other_backbone";
  fs::create_directories(other);
  for (const char* f : {"config.json", "tokenizer.json", "tokenizer_config.json"}) fs::copy_file(kBackbone + "/" + f, other + "/" + f);
  {
    SafetensorsCheckpoint ck = SafetensorsCheckpoint::open(kBackbone);
    std::vector<std::vector<float>> keep;
    std::vector<std::pair<std::string, TensorView>> tensors;
    for (const auto& [name, t] : ck.tensors()) {
      keep.emplace_back(t.view.f32(), t.view.f32() + t.view.numel());
      if (name == "model.norm.weight") keep.back()[0] += 0.5f;
      TensorView v = t.view;
      v.data = keep.back().data();
      tensors.emplace_back(name, v);
    }
    write_safetensors(other + "/model.safetensors", tensors);
  }
  expect_error(R"({"backbone": ")" + other + R"(", "experts": ["prose", "math"], "stage": 2, "expert_dirs": {"prose": ")" + dir +
                   R"(/prose", "math": ")" + dir + R"(/prose"}})",
               "trained for another backbone");
  expect_error(R"({"backbone": "models/default", "experts": ["prose", "math"], "stage": 2, "expert_dirs": {"prose": ")" + dir +
                   R"(/prose", "math": ")" + dir + R"(/prose"}})",
               "stage 2 expects the single expert \"math\"");
}

}  // namespace
}  // namespace mf
