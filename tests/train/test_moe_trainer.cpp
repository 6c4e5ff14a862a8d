// The trainer's token-routed MoE layer: its losses against hand-computed values, capacity
// dropping, top-p selection, training with resume, and export to Mixtral / Qwen2-MoE layouts
// that the engine runs with the trainer's logits.
#include <gtest/gtest.h>

#include <algorithm>

#include <sstream>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "engine_logits.h"
#include "test_util.h"
#include "tiny_moe_config.h"
#include "train/export.h"
#include "train/trainer.h"
#include "train/upcycle.h"

namespace mf {
namespace {

namespace F = torch::nn::functional;

namespace fs = std::filesystem;
using torch::indexing::Slice;

TrainMoeConfig moe_cfg(int n_expert, int k, float p = 0.0f, bool renorm = true) {
  TrainMoeConfig c;
  c.n_expert = n_expert;
  c.top_k = k;
  c.top_p = p;
  c.renormalize = renorm;
  return c;
}

TEST(MoeTrainerRouting, TopKSelectsTheLargestAndRenormalises) {
  // probabilities 0.1, 0.6, 0.3 (logits are their logs)
  auto logits = torch::tensor({std::log(0.1f), std::log(0.6f), std::log(0.3f)}).unsqueeze(0);
  RouterChoice r = choose_experts(logits, moe_cfg(3, 2));
  EXPECT_FALSE(r.selected[0][0].item<bool>());
  EXPECT_TRUE(r.selected[0][1].item<bool>() && r.selected[0][2].item<bool>());
  EXPECT_NEAR(r.weights[0][1].item<float>(), 0.6f / 0.9f, 1e-6);
  EXPECT_NEAR(r.weights[0][2].item<float>(), 0.3f / 0.9f, 1e-6);
  RouterChoice raw = choose_experts(logits, moe_cfg(3, 2, 0.0f, false));
  EXPECT_NEAR(raw.weights[0][1].item<float>(), 0.6f, 1e-6);
}

TEST(MoeTrainerRouting, TopPTakesTheFewestReachingP) {
  // probabilities 0.5, 0.25, 0.125, 0.125
  auto logits = torch::tensor({std::log(0.125f), std::log(0.5f), std::log(0.125f), std::log(0.25f)}).unsqueeze(0);
  auto count = [&](float p, int max_experts) {
    TrainMoeConfig c = moe_cfg(4, 1, p);
    c.max_experts = max_experts;
    return choose_experts(logits, c).selected.sum().item<int64_t>();
  };
  EXPECT_EQ(count(0.5f, 0), 1);
  EXPECT_EQ(count(0.6f, 0), 2);
  EXPECT_EQ(count(0.8f, 0), 3);
  EXPECT_EQ(count(1.0f, 0), 4);
  EXPECT_EQ(count(0.99f, 2), 2);
  TrainMoeConfig c = moe_cfg(4, 1, 0.6f);
  RouterChoice r = choose_experts(logits, c);
  EXPECT_TRUE(r.selected[0][1].item<bool>() && r.selected[0][3].item<bool>());
}

TEST(MoeTrainerLosses, MatchHandComputedValues) {
  // Two tokens, two experts, top-1. Token 0: probs (0.8, 0.2) -> expert 0; token 1: (0.4, 0.6) -> 1.
  auto logits = torch::tensor({{std::log(0.8f), std::log(0.2f)}, {std::log(0.4f), std::log(0.6f)}});
  RouterChoice r = choose_experts(logits, moe_cfg(2, 1));
  // f = (0.5, 0.5), P = (0.6, 0.4): 2 * (0.5*0.6 + 0.5*0.4) = 1.0
  EXPECT_NEAR(load_balancing_loss(r).item<double>(), 1.0, 1e-6);
  // logsumexp of log-probabilities is 0: z-loss 0. Shift one row by 2: (2^2 + 0) / 2 = 2.
  EXPECT_NEAR(router_z_loss(logits).item<double>(), 0.0, 1e-6);
  auto shifted = logits.clone();
  shifted.index_put_({0}, shifted.index({0}) + 2.0);
  EXPECT_NEAR(router_z_loss(shifted).item<double>(), 2.0, 1e-5);
  const double h0 = -(0.8 * std::log(0.8) + 0.2 * std::log(0.2)), h1 = -(0.4 * std::log(0.4) + 0.6 * std::log(0.6));
  EXPECT_NEAR(router_entropy(r.probs).item<double>(), (h0 + h1) / 2, 1e-6);
  // All to one expert: f = (1, 0), P = (0.6, 0.4) -> 2 * 0.6 = 1.2
  auto same = torch::tensor({{std::log(0.8f), std::log(0.2f)}, {std::log(0.6f), std::log(0.4f)}});
  RouterChoice s = choose_experts(same, moe_cfg(2, 1));
  EXPECT_NEAR(load_balancing_loss(s).item<double>(), 2.0 * (0.8 + 0.6) / 2, 1e-6);
}

TEST(MoeTrainerCapacity, DropsTheLatestTokensBeyondCapacity) {
  // Five tokens all preferring expert 0 (top-1): capacity 2 keeps tokens 0 and 1.
  auto logits = torch::tensor({{2.0f, 0.0f}, {2.0f, 0.0f}, {2.0f, 0.0f}, {2.0f, 0.0f}, {0.0f, 2.0f}});
  RouterChoice r = choose_experts(logits, moe_cfg(2, 1));
  EXPECT_EQ(apply_capacity(r, 2), 2);
  EXPECT_TRUE(r.selected[0][0].item<bool>() && r.selected[1][0].item<bool>());
  EXPECT_FALSE(r.selected[2][0].item<bool>() || r.selected[3][0].item<bool>());
  EXPECT_TRUE(r.selected[4][1].item<bool>());
  EXPECT_EQ(r.weights[3].abs().sum().item<float>(), 0.0f);
  EXPECT_EQ(apply_capacity(r, 0), 0);
}

TEST(MoeTrainerLayer, UpcyclingMakesEveryExpertTheDenseFfn) {
  TrainModelConfig c;
  c.n_embd = 16;
  c.n_ff = 24;
  c.moe = moe_cfg(4, 2);
  MoeFfn moe(c);
  Mlp dense(c);
  moe->upcycle_from(dense->gate_proj->weight, dense->up_proj->weight, dense->down_proj->weight);
  auto x = torch::randn({2, 5, 16});
  torch::NoGradGuard guard;
  // Renormalised weights sum to 1 and every expert is the dense FFN: the output is the dense one.
  EXPECT_TRUE(torch::allclose(moe(x), dense(x), 1e-5, 1e-6));
}

std::string tiny_moe_config(const std::string& dir, const std::string& moe_json) {
  return test::write_tiny_moe_config(dir, moe_json);
}

TEST(MoeTrainer, TrainsWithCapacityAndResumesExactly) {
  std::string dir = test::temp_dir();
  TrainConfig cfg = load_train_config(
      tiny_moe_config(dir, R"({"n_expert": 4, "top_k": 2, "n_ff_expert": 32, "capacity_factor": 1.25})"));
  TrainResult full = run_training(cfg, dir + "/full");
  ASSERT_TRUE(full.finished);
  const size_t n = full.train_losses.size();
  EXPECT_LT(full.train_losses[n - 1] + full.train_losses[n - 2], full.train_losses[0] + full.train_losses[1]);
  TrainRunOptions stop;
  stop.stop_after = 6;
  TrainResult a = run_training(cfg, dir + "/resumed", stop);
  TrainResult b = run_training(cfg, dir + "/resumed");
  ASSERT_EQ(a.train_losses.size() + b.train_losses.size(), n);
  for (size_t i = 0; i < b.train_losses.size(); ++i) EXPECT_EQ(b.train_losses[i], full.train_losses[a.train_losses.size() + i]);
  EXPECT_EQ(test::read_file(dir + "/resumed/model.safetensors"), test::read_file(dir + "/full/model.safetensors"));
}

// The engine runs the exported model with the trainer's logits: Mixtral layout (top-2,
// renormalised), Qwen2-MoE layout (shared expert, not renormalised) and dynamic top-p.
TEST(MoeTrainer, ExportedModelsGiveTheTrainersLogitsInTheEngine) {
  std::string dir = test::temp_dir();
  struct Case {
    const char* name;
    const char* moe;
    const char* model_type;
  } cases[] = {
      {"mixtral", R"({"n_expert": 4, "top_k": 2, "n_ff_expert": 32})", "mixtral"},
      {"qwen", R"({"n_expert": 4, "top_k": 1, "n_ff_expert": 16, "n_ff_shared": 24, "renormalize": false})", "qwen2_moe"},
      {"topp", R"({"n_expert": 4, "top_p": 0.6, "max_experts": 3, "n_ff_expert": 32})", "mixtral"},
      {"lora", R"({"n_expert": 4, "top_k": 2, "n_ff_expert": 32, "lora_rank": 4})", "mixtral"},
  };
  for (const Case& c : cases) {
    TrainConfig cfg = load_train_config(tiny_moe_config(dir + "/" + c.name, c.moe));
    cfg.model.tied_embeddings = false;
    LlamaLM model(cfg.model, 1500);
    model->init_weights(11);
    {
      torch::NoGradGuard guard;  // a router that prefers experts clearly, as a trained one does
      for (const MoeFfn& m : model->moe_layers()) {
        m->gate->weight.mul_(20.0);
        for (auto& p : m->named_parameters())  // LoRA-like experts as trained ones: B no longer zero
          if (p.key().find("_lora_b") != std::string::npos) p.value().normal_(0, 0.05);
      }
    }
    model->eval();
    std::string out = dir + "/" + c.name + "/export";
    export_hf(model, cfg.tokenizer, out);
    nlohmann::json hf = nlohmann::json::parse(test::read_file(out + "/config.json"));
    EXPECT_EQ(hf["model_type"], c.model_type);
    std::vector<int64_t> ids = {0, 5, 300, 1499, 42, 7, 7, 1000, 3};
    torch::NoGradGuard guard;
    auto ref = model->forward(torch::tensor(ids).unsqueeze(0))[0];  // [T, V]
    EXPECT_LE(test::engine_logit_error(out, ids, ref), 1.0) << c.name << ": logits differ beyond 1e-4";
  }
}

// The utilisation columns describe the training batch: evaluating at a step does not change
// what that step logs.
TEST(MoeTrainer, UtilisationIsLoggedFromTrainingNotEvaluation) {
  std::string dir = test::temp_dir();
  const std::string moe = R"({"n_expert": 4, "top_k": 2, "n_ff_expert": 32})";
  auto moe_columns = [](const std::string& run) {
    std::vector<std::string> out;
    std::istringstream log(test::read_file(run + "/train_log.csv"));
    std::string line;
    std::getline(log, line);
    const size_t first = std::string_view(line).find("experts_per_token");
    const size_t skip = size_t(std::count(line.begin(), line.begin() + long(first), ','));
    while (std::getline(log, line)) {
      size_t at = 0;
      for (size_t c = 0; c < skip; ++c) at = line.find(',', at) + 1;
      out.push_back(line.substr(at));
    }
    return out;
  };
  run_training(load_train_config(test::write_tiny_moe_config(dir + "/often", moe, 8, 2)), dir + "/often/out");
  run_training(load_train_config(test::write_tiny_moe_config(dir + "/once", moe, 8, 8)), dir + "/once/out");
  const std::vector<std::string> often = moe_columns(dir + "/often/out"), once = moe_columns(dir + "/once/out");
  ASSERT_EQ(often.size(), 4u);  // steps 2, 4, 6, 8
  EXPECT_EQ(often, once);
}

// Sparse upcycling: every expert starts as the dense FFN, so the upcycled model (renormalised
// top-2) computes what the dense checkpoint computes; a checkpoint of another shape is named.
TEST(MoeTrainer, UpcycledModelStartsAsTheDenseModel) {
  std::string dir = test::temp_dir();
  TrainConfig cfg = load_train_config(tiny_moe_config(dir, R"({"n_expert": 4, "top_k": 2})"));
  TrainModelConfig dense_cfg = cfg.model;
  dense_cfg.moe = TrainMoeConfig{};
  LlamaLM dense(dense_cfg, 1500);
  dense->init_weights(5);
  export_hf(dense, cfg.tokenizer, dir + "/dense");
  LlamaLM moe(cfg.model, 1500);
  moe->init_weights(6);
  upcycle_from_dense(moe, dir + "/dense");
  torch::NoGradGuard guard;
  auto ids = torch::tensor(std::vector<int64_t>{3, 99, 1400, 7, 7, 250}).unsqueeze(0);
  EXPECT_TRUE(torch::allclose(moe->forward(ids), dense->forward(ids), 1e-4, 1e-5));
  TrainModelConfig wider = cfg.model;
  wider.moe.n_ff_expert = 48;
  LlamaLM other(wider, 1500);
  try {
    upcycle_from_dense(other, dir + "/dense");
    ADD_FAILURE() << "accepted a dense FFN of another width";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("the MoE model needs"), std::string::npos) << e.what();
  }
}

// LoRA-like experts: each expert's parameters are its A and B only, every expert starts as the
// shared FFN (B = 0), upcycling fills the shared FFN, and freezing one leaves the others training.
TEST(MoeTrainerLayer, LoraLikeExpertsShareOneFfnAndStartAsIt) {
  std::string dir = test::temp_dir();
  TrainConfig cfg = load_train_config(tiny_moe_config(dir, R"({"n_expert": 4, "top_k": 2, "n_ff_expert": 32, "lora_rank": 3})"));
  EXPECT_DOUBLE_EQ(cfg.model.moe.lora_alpha, 6.0);  // 2 * rank by default
  LlamaLM model(cfg.model, 1500);
  model->init_weights(3);
  MoeFfn moe = model->moe_layers()[0];
  ASSERT_TRUE(moe->expert_base);
  auto* e1 = moe->experts[1]->as<ExpertMlp>();
  int64_t own = 0;
  for (const auto& p : e1->parameters()) own += p.numel();
  EXPECT_EQ(own, 3 * (32 + 32) + 3 * (32 + 32) + 3 * (32 + 32));  // A [3, n_in] and B [n_out, 3] of 32-wide maps
  torch::NoGradGuard guard;
  auto x = torch::randn({5, 32});  // [n, E]
  EXPECT_TRUE(torch::allclose(e1->forward(x), moe->expert_base->forward(x)));
  const std::array<torch::Tensor, 3> w = e1->merged_weights();
  EXPECT_TRUE(torch::equal(w[0], moe->expert_base->gate->weight));
  e1->lora_b[0].normal_();
  auto merged = torch::matmul(F::silu(torch::matmul(x, e1->merged_weights()[0].t())) * torch::matmul(x, w[1].t()), w[2].t());
  EXPECT_TRUE(torch::allclose(e1->forward(x), merged, 1e-4, 1e-5));  // the export's merged weights compute the same
}

// MO-CTE's cluster routing stays off after initialisation, whatever the seed, until a clustering
// adopts one (initialisation once drew the flag at random).
TEST(MoeTrainerLayer, ClusterRoutingIsOffAfterInitialisation) {
  std::string dir = test::temp_dir();
  TrainConfig cfg = load_train_config(tiny_moe_config(dir, R"({"n_expert": 4, "top_k": 1, "clusters": 2})"));
  for (uint64_t seed = 1; seed <= 8; ++seed) {
    LlamaLM model(cfg.model, 1500);
    model->init_weights(seed);
    for (const MoeFfn& m : model->moe_layers()) EXPECT_FALSE(m->clustered()) << "seed " << seed;
  }
}

// Branch-Train-Mix: expert e takes branch e's FFN, the shared tensors the branches' mean; with
// two identical branches the model computes what one branch computes.
TEST(MoeTrainer, BranchTrainMixTakesEachBranchsFfnAndAveragesTheRest) {
  std::string dir = test::temp_dir();
  TrainConfig cfg = load_train_config(tiny_moe_config(dir, R"({"n_expert": 2, "top_k": 1})"));
  TrainModelConfig dense_cfg = cfg.model;
  dense_cfg.moe = TrainMoeConfig{};
  LlamaLM a(dense_cfg, 1500), b(dense_cfg, 1500);
  a->init_weights(5);
  b->init_weights(6);
  export_hf(a, cfg.tokenizer, dir + "/a");
  export_hf(b, cfg.tokenizer, dir + "/b");
  LlamaLM moe(cfg.model, 1500);
  moe->init_weights(7);
  branch_train_mix(moe, {dir + "/a", dir + "/b"});
  auto* layer = moe->model->layers[1]->as<Block>();
  auto* ma = a->model->layers[1]->as<Block>();
  auto* mb = b->model->layers[1]->as<Block>();
  EXPECT_TRUE(torch::equal(layer->moe->experts[0]->as<ExpertMlp>()->down->weight, ma->mlp->down_proj->weight));
  EXPECT_TRUE(torch::equal(layer->moe->experts[1]->as<ExpertMlp>()->gate->weight, mb->mlp->gate_proj->weight));
  EXPECT_TRUE(torch::allclose(layer->self_attn->q_proj->weight,
                              (ma->self_attn->q_proj->weight + mb->self_attn->q_proj->weight) / 2));
  LlamaLM same(cfg.model, 1500);
  same->init_weights(8);
  branch_train_mix(same, {dir + "/a", dir + "/a"});
  torch::NoGradGuard guard;
  auto ids = torch::tensor(std::vector<int64_t>{3, 99, 1400, 7, 7, 250}).unsqueeze(0);
  EXPECT_TRUE(torch::allclose(same->forward(ids), a->forward(ids), 1e-4, 1e-5));
  try {
    branch_train_mix(same, {dir + "/a"});
    ADD_FAILURE() << "accepted one branch for two experts";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("names 1 branches for 2 experts"), std::string::npos) << e.what();
  }
}

TEST(MoeTrainer, BadMoeConfigIsNamed) {
  std::string dir = test::temp_dir();
  auto expect_error = [&](const std::string& moe, const std::string& needle) {
    try {
      load_train_config(tiny_moe_config(dir, moe));
      ADD_FAILURE() << "accepted " << moe;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error(R"({"n_expert": 4, "top_k": 5})", "model.moe.top_k 5 must be in 1..4");
  expect_error(R"({"n_expert": 4, "top_p": 1.5})", "model.moe.top_p");
  expect_error(R"({"n_expert": 4, "capacity_factor": 0.5, "top_k": 1})", "room for fewer assignments than tokens");
  expect_error(R"({"n_expert": 4, "renormalize": false})", "needs a shared expert");
  expect_error(R"({"n_expert": 4, "topk": 2})", "unknown key 'model.moe.topk'");
  expect_error(R"({"n_expert": 2, "top_k": 1, "lora_rank": 4, "branch_from": ["a", "b"]})", "branch_from needs full experts");
  expect_error(R"({"n_expert": 4, "lora_rank": -1})", "lora_rank and lora_alpha must not be negative");
}

}  // namespace
}  // namespace mf
