// MO-CTE's cluster-oriented routing: randomised SVD against the exact one, k-means and the
// silhouette on data with and without clusters, the nearest-centroid rule for unseen tokens as
// an affine gate, a training run that clusters (its cost logged), and the export the engine
// runs with the trainer's logits.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "engine_logits.h"
#include "test_util.h"
#include "tiny_moe_config.h"
#include "train/cluster_routing.h"
#include "train/export.h"
#include "train/trainer.h"

namespace mf {
namespace {

TEST(ClusterRouting, RandomizedSvdFindsTheTopSubspace) {
  torch::manual_seed(1);
  // Rank-3 signal plus small noise: the top 3 right singular vectors span the signal.
  auto x = torch::matmul(torch::randn({200, 3}, torch::kFloat64) * torch::tensor({10.0, 6.0, 3.0}, torch::kFloat64),
                         torch::randn({3, 40}, torch::kFloat64)) +
           0.01 * torch::randn({200, 40}, torch::kFloat64);
  auto V = randomized_top_singular_vectors(x, 3, 5, 7);                                        // [40, 3]
  auto exact = std::get<2>(torch::linalg_svd(x, false)).narrow(0, 0, 3).t();                 // [40, 3]
  // Same subspace: the projection matrices agree.
  auto diff = torch::matmul(V, V.t()) - torch::matmul(exact, exact.t());
  EXPECT_LT(diff.abs().max().item<double>(), 1e-6);
}

TEST(ClusterRouting, KMeansAndSilhouetteSeeStructureOnlyWhereThereIsSome) {
  torch::manual_seed(2);
  auto centres = torch::tensor({{0.0, 0.0}, {8.0, 0.0}, {0.0, 8.0}}, torch::kFloat64);
  auto truth = torch::arange(300, torch::kInt64).remainder(3);
  auto blobs = centres.index_select(0, truth) + 0.5 * torch::randn({300, 2}, torch::kFloat64);
  KMeansResult km = kmeans(blobs, 3, 20, 5);
  // Every true blob maps to one cluster.
  for (int c = 0; c < 3; ++c) {
    auto labels = km.labels.index({truth == c});
    EXPECT_TRUE((labels == labels[0]).all().item<bool>()) << "blob " << c;
  }
  const double s_blobs = silhouette(blobs, km.labels, 3);
  EXPECT_GT(s_blobs, 0.7);
  EXPECT_GT(s_blobs - null_silhouette(blobs, 3, 20, 9), 0.2);  // far above a blob of the same covariance
  auto gauss = torch::randn({300, 2}, torch::kFloat64);
  KMeansResult kg = kmeans(gauss, 3, 20, 5);
  const double s_gauss = silhouette(gauss, kg.labels, 3);
  EXPECT_GT(s_gauss, 0.2);  // k-means splits even one blob, with a respectable silhouette...
  EXPECT_LT(std::abs(s_gauss - null_silhouette(gauss, 3, 20, 9)), 0.1);  // ...which the null comparison sees through
}

TEST(ClusterRouting, UnseenTokensTakeTheNearestCentroidThroughTheAffineGate) {
  torch::manual_seed(3);
  auto mean = torch::randn({16}, torch::kFloat64);
  auto V = std::get<0>(torch::linalg_qr(torch::randn({16, 4}, torch::kFloat64)));  // [16, 4] orthonormal
  auto centroids = torch::randn({5, 4}, torch::kFloat64);
  ClusterGate g = cluster_gate(mean, V, centroids);
  auto h = torch::randn({100, 16}, torch::kFloat64);  // tokens never seen by the clustering
  auto nearest = torch::cdist(torch::matmul(h - mean, V), centroids).argmin(1);
  EXPECT_TRUE(torch::equal(g.assign(h), nearest));
}

std::string write_config(const std::string& dir, const std::string& moe) {
  return test::write_tiny_moe_config(dir, moe, /*steps=*/8, /*eval_every=*/8);
}

// A run that clusters every 3 steps and adopts any clustering (threshold -1): the clusterings
// are logged with their cost, routing then stays inside clusters, and the exported model (a
// cluster gate per layer) gives the trainer's logits in the engine.
TEST(ClusterRouting, TrainingClustersAndTheEngineRunsTheExport) {
  const std::string dir = test::temp_dir();
  TrainConfig cfg = load_train_config(write_config(dir, R"({"n_expert": 4, "top_k": 1, "n_ff_expert": 32, "clusters": 2,
      "cluster_every": 3, "cluster_rank": 4, "cluster_tokens": 96, "cluster_threshold": -1, "cluster_margin": -10})"));
  TrainResult r = run_training(cfg, dir + "/out");
  ASSERT_TRUE(r.finished);
  EXPECT_GT(r.clustering_seconds, 0.0);
  const std::string csv = test::read_file(dir + "/out/clusters.csv");
  EXPECT_EQ(csv.rfind("step,layer,tokens,silhouette,null_silhouette,adopted,inertia,step_seconds\n", 0), 0u);
  EXPECT_NE(csv.find("\n3,0,96,"), std::string::npos) << csv;
  nlohmann::json hf = nlohmann::json::parse(test::read_file(dir + "/out/config.json"));
  EXPECT_EQ(hf["moeforge_expert_clusters"], 2);
  // The engine on the export against the trainer's forward on the same weights.
  LlamaLM model(cfg.model, 1500);
  model->init_weights(11);
  torch::NoGradGuard guard;
  for (MoeFfn m : model->moe_layers()) {  // a decisive cluster gate, as a clustering sets
    m->cluster_gate->weight.normal_(0, 1.0);
    m->cluster_gate->bias.normal_(0, 0.1);
    m->cluster_active.fill_(1.0);
  }
  model->eval();
  export_hf(model, cfg.tokenizer, dir + "/export");
  std::vector<int64_t> ids = {0, 5, 300, 1499, 42, 7, 7, 1000, 3};
  auto ref = model->forward(torch::tensor(ids).unsqueeze(0))[0];  // [T, V]
  EXPECT_LE(test::engine_logit_error(dir + "/export", ids, ref), 1.0);
  // Every token routed inside its cluster's two experts.
  for (MoeFfn m : model->moe_layers()) {
    m->record = true;
    model->forward(torch::tensor(ids).unsqueeze(0));
    m->record = false;
    auto cluster = m->cluster_gate(m->last_input).argmax(1);  // [T]
    for (int64_t e = 0; e < 4; ++e) {
      auto chosen = m->last_selected.index({torch::indexing::Slice(), e});
      EXPECT_TRUE((chosen.logical_not() | (cluster == e / 2)).all().item<bool>()) << "expert " << e;
    }
  }
}

// Top-p routing inside clusters, over LoRA-like experts (exported merged): the engine masks
// the router to the token's cluster before top-p, as the trainer does.
TEST(ClusterRouting, TopPInsideClustersOverLoraExpertsRunsInTheEngine) {
  const std::string dir = test::temp_dir();
  TrainConfig cfg = load_train_config(write_config(dir, R"({"n_expert": 4, "top_p": 0.6, "n_ff_expert": 32, "clusters": 2,
      "lora_rank": 4})"));
  LlamaLM model(cfg.model, 1500);
  model->init_weights(12);
  torch::NoGradGuard guard;
  for (MoeFfn m : model->moe_layers()) {
    m->cluster_gate->weight.normal_(0, 1.0);
    m->cluster_gate->bias.normal_(0, 0.1);
    m->cluster_active.fill_(1.0);
    m->gate->weight.mul_(20.0);
    for (auto& p : m->named_parameters())
      if (p.key().find("_lora_b") != std::string::npos) p.value().normal_(0, 0.05);
  }
  model->eval();
  export_hf(model, cfg.tokenizer, dir + "/export");
  nlohmann::json hf = nlohmann::json::parse(test::read_file(dir + "/export/config.json"));
  EXPECT_EQ(hf["moeforge_expert_clusters"], 2);
  EXPECT_EQ(hf["moeforge_expert_top_p"], 0.6f);
  std::vector<int64_t> ids = {0, 5, 300, 1499, 42, 7, 7, 1000, 3};
  auto ref = model->forward(torch::tensor(ids).unsqueeze(0))[0];  // [T, V]
  EXPECT_LE(test::engine_logit_error(dir + "/export", ids, ref), 1.0);
}

TEST(ClusterRouting, BadClusterConfigsAreNamed) {
  const std::string dir = test::temp_dir();
  auto expect_error = [&](const std::string& moe, const std::string& needle) {
    try {
      load_train_config(write_config(dir, moe));
      ADD_FAILURE() << "accepted " << moe;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error(R"({"n_expert": 8, "clusters": 4, "cluster_tokens": 2, "top_k": 1})", "above the sample of 2 tokens");
  expect_error(R"({"n_expert": 8, "clusters": 3, "top_k": 1})", "must be at least 2 and divide");
  expect_error(R"({"n_expert": 8, "clusters": 4, "top_k": 3})", "above the 2 experts each cluster owns");
}

}  // namespace
}  // namespace mf
