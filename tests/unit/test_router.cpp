// The router's domain classifier on synthetic embeddings: what an MLP learns that softmax
// regression cannot, determinism, the hold-out split, and the .moe router tensors.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>

#include "core/error.h"
#include "formats/gguf.h"
#include "moe/router.h"
#include "test_util.h"

namespace mf {
namespace {

// XOR-like domains in `dim` dimensions: domain 0 is the blobs at (+a, +a) and (-a, -a) in
// the first two coordinates, domain 1 those at (+a, -a) and (-a, +a); the other coordinates
// are noise. No linear classifier does better than about 50% + a little.
CalibStats xor_stats(int64_t per_domain, int64_t dim = 4, uint32_t seed = 1) {
  CalibStats s;
  s.dim = dim;
  s.embed_layers = {3};
  std::mt19937 rng(seed);
  std::normal_distribution<float> noise(0.0f, 0.35f);
  const float a = 1.0f;
  const float centres[2][2][2] = {{{a, a}, {-a, -a}}, {{a, -a}, {-a, a}}};  // [domain, blob, xy]
  for (int d = 0; d < 2; ++d) {
    DomainStats ds;
    ds.name = d == 0 ? "same-sign" : "mixed-sign";
    ds.clusters.resize(2);
    for (int c = 0; c < 2; ++c) {
      ds.clusters[c].centroid.assign(size_t(dim), 0.0f);
      ds.clusters[c].centroid[0] = centres[d][c][0];
      ds.clusters[c].centroid[1] = centres[d][c][1];
    }
    for (int64_t i = 0; i < per_domain; ++i) {
      const int c = int(rng() % 2);
      for (int64_t j = 0; j < dim; ++j) ds.embeddings.push_back((j < 2 ? centres[d][c][j] : 0.0f) + noise(rng));
      ds.sample_cluster.push_back(c);
      ds.clusters[c].n_samples += 1;
      ds.clusters[c].n_tokens += 32;
    }
    s.domains.push_back(std::move(ds));
  }
  return s;
}

// Class-balanced accuracy of r.route() over every sample.
double accuracy(const Router& r, const CalibStats& s) {
  double acc = 0;
  for (size_t d = 0; d < s.domains.size(); ++d) {
    int64_t ok = 0;
    for (int64_t i = 0; i < s.domains[d].n_samples(); ++i) ok += r.route(&s.domains[d].embeddings[i * s.dim]).domain == int(d);
    acc += double(ok) / double(s.domains[d].n_samples()) / double(s.domains.size());
  }
  return acc;
}

RouterTrainOptions small_mlp() {
  RouterTrainOptions o;
  o.hidden = 16;
  o.max_epochs = 40;
  o.batch_size = 64;
  o.learning_rate = 1e-2;
  o.weight_decay = 1e-3;
  return o;
}

TEST(RouterMlp, LearnsXorThatTheLinearRouterCannot) {
  const CalibStats s = xor_stats(1000);
  std::vector<std::vector<int>> micro;
  RouterTrainReport mlp_rep, lin_rep;
  Router mlp = train_router(s, 1, small_mlp(), &micro, &mlp_rep);
  RouterTrainOptions lin_opts = small_mlp();
  lin_opts.hidden = 0;
  Router lin = train_router(s, 1, lin_opts, &micro, &lin_rep);
  EXPECT_EQ(mlp.n_hidden, 16);
  EXPECT_EQ(lin.n_hidden, 0);
  EXPECT_GT(mlp_rep.holdout_accuracy, 0.95);
  EXPECT_GT(accuracy(mlp, s), 0.95);
  EXPECT_LT(lin_rep.holdout_accuracy, 0.75);
  EXPECT_LT(accuracy(lin, s), 0.75);
}

// Runs of held-out samples: (start, length) of each.
std::vector<std::pair<int64_t, int64_t>> runs(const std::vector<char>& mask) {
  std::vector<std::pair<int64_t, int64_t>> r;
  for (int64_t i = 0; i < int64_t(mask.size()); ++i)
    if (mask[i]) {
      if (i == 0 || !mask[i - 1]) r.push_back({i, 0});
      r.back().second++;
    }
  return r;
}

TEST(RouterMlp, HoldOutIsContiguousBlocksSpreadOverTheSamples) {
  auto r = runs(holdout_mask(1000, 0.1, 8));
  ASSERT_EQ(r.size(), 8u);
  int64_t total = 0;
  for (size_t b = 0; b < r.size(); ++b) {
    EXPECT_TRUE(r[b].second == 12 || r[b].second == 13) << r[b].second;
    EXPECT_GE(r[b].first, int64_t(b) * 125);  // inside segment b of 8
    EXPECT_LE(r[b].first + r[b].second, int64_t(b + 1) * 125);
    total += r[b].second;
  }
  EXPECT_EQ(total, 100);
  EXPECT_EQ(runs(holdout_mask(32, 0.1, 8)).size(), 3u);  // 3 samples: one block each
  EXPECT_EQ(runs(holdout_mask(2, 0.01, 8)), (std::vector<std::pair<int64_t, int64_t>>{{1, 1}}));  // at least one
  EXPECT_TRUE(runs(holdout_mask(1000, 0.0, 8)).empty());
  EXPECT_TRUE(runs(holdout_mask(1, 0.5, 8)).empty());  // a lone sample trains
  EXPECT_THROW(holdout_mask(10, 1.0, 8), Error);
  EXPECT_THROW(holdout_mask(10, 0.1, 0), Error);
}

TEST(RouterMlp, HoldsOutBlocksAndReportsWhatRouteComputes) {
  const CalibStats s = xor_stats(500);
  std::vector<std::vector<int>> micro;
  RouterTrainOptions o = small_mlp();
  RouterTrainReport rep;
  train_router(s, 1, o, &micro, &rep);
  EXPECT_EQ(rep.holdout_samples, 2 * 50);  // 10% of each domain
  EXPECT_EQ(rep.train_samples, 2 * 450);
  EXPECT_EQ(rep.epochs, o.max_epochs);
  EXPECT_EQ(rep.best_epoch, o.max_epochs);  // no patience: the last epoch is kept
  ASSERT_EQ(rep.epoch_holdout_loss.size(), size_t(o.max_epochs));
  EXPECT_EQ(rep.holdout_loss, rep.epoch_holdout_loss.back());

  // Without a hold-out every sample trains, and the batched training forward agrees with
  // the per-prompt route() on the reported accuracy.
  o.holdout_fraction = 0;
  Router all = train_router(s, 1, o, &micro, &rep);
  EXPECT_EQ(rep.holdout_samples, 0);
  EXPECT_EQ(rep.train_samples, 1000);
  EXPECT_NEAR(accuracy(all, s), rep.train_accuracy, 2.0 / 500);  // a near-tie may flip between float and double

  // Early stopping keeps the best hold-out epoch.
  o.holdout_fraction = 0.1;
  o.patience = 2;
  o.max_epochs = 200;
  o.learning_rate = 0.05;  // noisy: the hold-out loss stops improving long before 200 epochs
  train_router(s, 1, o, &micro, &rep);
  EXPECT_LT(rep.epochs, 200);
  EXPECT_EQ(rep.epochs, rep.best_epoch + 2);
  EXPECT_EQ(rep.holdout_loss, rep.epoch_holdout_loss[size_t(rep.best_epoch - 1)]);
}

TEST(RouterMlp, SameSeedSameRouterOtherSeedOtherRouter) {
  const CalibStats s = xor_stats(300);
  std::vector<std::vector<int>> micro;
  RouterTrainOptions o = small_mlp();
  o.max_epochs = 5;
  Router a = train_router(s, 1, o, &micro), b = train_router(s, 1, o, &micro);
  EXPECT_EQ(a.hidden_weight, b.hidden_weight);  // bit for bit
  EXPECT_EQ(a.hidden_bias, b.hidden_bias);
  EXPECT_EQ(a.weight, b.weight);
  EXPECT_EQ(a.bias, b.bias);
  o.seed = 8;
  Router c = train_router(s, 1, o, &micro);
  EXPECT_NE(a.hidden_weight, c.hidden_weight);
}

TEST(RouterMlp, RejectsBadOptions) {
  const CalibStats s = xor_stats(50);
  std::vector<std::vector<int>> micro;
  auto bad = [&](auto change) {
    RouterTrainOptions o = small_mlp();
    change(o);
    EXPECT_THROW(train_router(s, 1, o, &micro), Error);
  };
  bad([](RouterTrainOptions& o) { o.hidden = -1; });
  bad([](RouterTrainOptions& o) { o.max_epochs = 0; });
  bad([](RouterTrainOptions& o) { o.batch_size = 0; });
  bad([](RouterTrainOptions& o) { o.learning_rate = 0; });
  bad([](RouterTrainOptions& o) { o.weight_decay = -1; });
  bad([](RouterTrainOptions& o) { o.holdout_fraction = 1.0; });
  bad([](RouterTrainOptions& o) { o.holdout_blocks = 0; });
}

// Writes a router (after `edit` changes the writer) and reads it back.
template <typename Edit>
Router write_read(const Router& r, Edit edit) {
  GgufWriter w;
  r.write(w);
  edit(w);
  std::string path = test::temp_dir() + "/router.gguf";
  w.write(path);
  auto g = GgufFile::open(path);
  return Router::read(*g, path);
}

Router write_read(const Router& r) {
  return write_read(r, [](GgufWriter&) {});
}

std::string read_error(const Router& r, const std::function<void(GgufWriter&)>& edit) {
  try {
    write_read(r, edit);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(RouterMlp, FileRoundTripGivesIdenticalProbabilities) {
  const CalibStats s = xor_stats(200);
  std::vector<std::vector<int>> micro;
  for (int hidden : {16, 0}) {
    RouterTrainOptions o = small_mlp();
    o.hidden = hidden;
    o.max_epochs = 3;
    Router r = train_router(s, 2, o, &micro);
    Router back = write_read(r);
    EXPECT_EQ(back.n_hidden, hidden);
    EXPECT_EQ(back.domains, r.domains);
    for (int64_t i = 0; i < 50; ++i) {
      const float* x = &s.domains[i % 2].embeddings[i * s.dim];
      EXPECT_EQ(back.domain_probs(x), r.domain_probs(x));  // exactly
      EXPECT_EQ(back.route(x).subdomain, r.route(x).subdomain);
    }
  }
}

TEST(RouterMlp, MisShapedRouterTensorsFailClearly) {
  const CalibStats s = xor_stats(200);
  std::vector<std::vector<int>> micro;
  RouterTrainOptions o = small_mlp();
  o.max_epochs = 1;
  const Router mlp = train_router(s, 1, o, &micro);
  o.hidden = 0;
  const Router lin = train_router(s, 1, o, &micro);

  // The hidden size disagrees with the tensors.
  std::string e = read_error(mlp, [](GgufWriter& w) { w.set_u32("moeforge.moe.router.hidden", 17); });
  EXPECT_NE(e.find("router tensor 'moe.router.hidden.weight' is f32 [16, 4], expected f32 [17, 4]"), std::string::npos) << e;
  e = read_error(lin, [](GgufWriter& w) { w.set_u32("moeforge.moe.router.hidden", 16); });
  EXPECT_NE(e.find("missing tensor 'moe.router.hidden.weight'"), std::string::npos) << e;
  e = read_error(mlp, [](GgufWriter& w) { w.set_u32("moeforge.moe.router.hidden", 0); });
  EXPECT_NE(e.find("'moe.router.hidden.*' present"), std::string::npos) << e;
  // A tensor of the right size but the wrong shape: the output layer transposed to [16, 2].
  // The writer adds it under a placeholder name; swapping the names in the file's bytes
  // (same length) keeps the file valid.
  std::vector<float> wt(mlp.weight.size(), 0.5f);  // [n_hidden, n_domain]
  std::string path = test::temp_dir() + "/router.gguf";
  {
    GgufWriter w;
    mlp.write(w);
    w.add_tensor("moe.router.weighT", make_view(DType::F32, {16, 2}, wt.data()));
    w.write(path);
  }
  std::string bytes = test::read_file(path);
  bytes.replace(bytes.find("moe.router.weight"), 17, "moe.router.weighX");
  bytes.replace(bytes.find("moe.router.weighT"), 17, "moe.router.weight");
  test::write_file(path, bytes);
  e.clear();
  try {
    Router::read(*GgufFile::open(path), path);
  } catch (const Error& x) {
    e = x.what();
  }
  EXPECT_NE(e.find("router tensor 'moe.router.weight' is f32 [16, 2], expected f32 [2, 16]"), std::string::npos) << e;
  // A missing key.
  GgufWriter w;
  w.set_u32("moeforge.moe.router.subdomains", 1);
  w.write(path);
  EXPECT_THROW(Router::read(*GgufFile::open(path), path), Error);
}

}  // namespace
}  // namespace mf
