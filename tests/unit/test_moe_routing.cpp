// Token-routed MoE stages (ops/moe_routing.h, model/moe_ffn.h) against direct scalar definitions.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "formats/gguf.h"
#include "model/moe_ffn.h"
#include "model/session.h"
#include "model/weight_binder.h"
#include "ops/ops.h"
#include "test_util.h"

namespace mf {
namespace {

RouteParams topk(int n_expert, int k, bool renorm) {
  RouteParams p;
  p.n_expert = n_expert;
  p.top_k = k;
  p.renormalize = renorm;
  return p;
}

RouteParams topp(int n_expert, float p_, int lo, int hi) {
  RouteParams p;
  p.n_expert = n_expert;
  p.top_p = p_;
  p.min_experts = lo;
  p.max_experts = hi;
  return p;
}

TokenRouting route_all(const std::vector<float>& logits, int n_expert, const RouteParams& p) {
  TokenRouting r;
  const int64_t n = int64_t(logits.size()) / n_expert;
  resize_routing(r, n, n_expert, p.max_per_token());
  route(logits.data(), n, p, r);
  return r;
}

TEST(MoeRoute, TopKPicksTheLargestInOrderAndRenormalises) {
  const int E = 6;
  std::vector<float> logits = test::random_floats(50 * E, 1, -3, 3);
  for (bool renorm : {false, true}) {
    TokenRouting r = route_all(logits, E, topk(E, 3, renorm));
    for (int64_t t = 0; t < 50; ++t) {
      std::vector<double> prob(E);
      double z = 0;
      for (int e = 0; e < E; ++e) z += prob[e] = std::exp(double(logits[t * E + e]));
      for (double& q : prob) q /= z;
      std::vector<int> order(E);
      std::iota(order.begin(), order.end(), 0);
      std::sort(order.begin(), order.end(), [&](int a, int b) { return prob[a] > prob[b]; });
      ASSERT_EQ(r.n_used[t], 3);
      double chosen = prob[order[0]] + prob[order[1]] + prob[order[2]];
      for (int j = 0; j < 3; ++j) {
        EXPECT_EQ(r.expert[t * 3 + j], order[j]);
        EXPECT_NEAR(r.weight[t * 3 + j], prob[order[j]] / (renorm ? chosen : 1.0), 1e-6);
        EXPECT_NEAR(r.probs[t * E + order[j]], prob[order[j]], 1e-6);
      }
    }
  }
}

TEST(MoeRoute, WeightScaleMultipliesTheChosenWeights) {
  std::vector<float> logits = {0.1f, 1.0f, -0.5f, 0.7f};
  RouteParams p = topk(4, 2, true);
  TokenRouting plain = route_all(logits, 4, p);
  p.weight_scale = 1.5f;
  TokenRouting scaled = route_all(logits, 4, p);
  for (int j = 0; j < 2; ++j) EXPECT_FLOAT_EQ(scaled.weight[j], 1.5f * plain.weight[j]);
}

TEST(MoeRoute, TiesGoToTheLowerExpertIndex) {
  std::vector<float> logits = {0.5f, 2.0f, 2.0f, 2.0f};  // experts 1, 2, 3 tie
  TokenRouting r = route_all(logits, 4, topk(4, 2, false));
  EXPECT_EQ(r.expert[0], 1);
  EXPECT_EQ(r.expert[1], 2);
}

TEST(MoeRoute, TopPTakesTheFewestExpertsReachingPWithinFloorAndCeiling) {
  // Probabilities 0.5, 0.25, 0.125, 0.125 (logits are their logs).
  std::vector<float> logits = {std::log(0.125f), std::log(0.5f), std::log(0.125f), std::log(0.25f)};
  auto used = [&](float p, int lo, int hi) { return route_all(logits, 4, topp(4, p, lo, hi)).n_used[0]; };
  EXPECT_EQ(used(0.5f, 1, 0), 1);   // 0.5 reaches 0.5
  EXPECT_EQ(used(0.6f, 1, 0), 2);   // 0.75
  EXPECT_EQ(used(0.8f, 1, 0), 3);   // 0.875
  EXPECT_EQ(used(1.0f, 1, 0), 4);
  EXPECT_EQ(used(0.3f, 2, 0), 2);   // floor
  EXPECT_EQ(used(0.99f, 1, 2), 2);  // ceiling
  TokenRouting r = route_all(logits, 4, topp(4, 0.8f, 1, 0));
  EXPECT_EQ(std::vector<int32_t>(r.expert.begin(), r.expert.begin() + 3), (std::vector<int32_t>{1, 3, 0}));
}

TEST(MoeRoute, CheckNamesBadSettings) {
  EXPECT_NE(topk(8, 9, false).check().find("9"), std::string::npos);
  EXPECT_NE(topk(8, 0, false).check(), "");
  EXPECT_EQ(topk(8, 8, false).check(), "");
  EXPECT_NE(topp(8, 1.5f, 1, 0).check().find("(0, 1]"), std::string::npos);
  EXPECT_NE(topp(8, -0.5f, 1, 0).check(), "");
  EXPECT_NE(topp(8, 0.5f, 3, 2).check(), "");  // floor above ceiling
  EXPECT_NE(topp(8, 0.5f, 1, 9).check(), "");  // ceiling above the experts
  EXPECT_EQ(topp(8, 0.5f, 1, 4).check(), "");
}

TEST(MoeDispatch, SortsAssignmentsByExpertThenTokenAndCombineSumsInChoiceOrder) {
  const int E = 5, W = 7;
  const int64_t n = 23;
  std::vector<float> logits = test::random_floats(n * E, 2, -2, 2);
  TokenRouting r = route_all(logits, E, topp(E, 0.7f, 1, 4));  // a varying count per token
  Dispatch d;
  dispatch(r, d);
  int64_t total = 0;
  for (int64_t t = 0; t < n; ++t) total += r.n_used[t];
  ASSERT_EQ(d.n_assign(), total);
  for (int e = 0; e < E; ++e)
    for (int64_t a = d.offsets[e]; a < d.offsets[e + 1]; ++a) {
      if (a > d.offsets[e]) EXPECT_LT(d.token[a - 1], d.token[a]);
      const int64_t t = d.token[a];
      bool found = false;
      for (int j = 0; j < r.n_used[t]; ++j)
        if (r.expert[t * r.k_max + j] == e) {
          found = true;
          EXPECT_EQ(d.row_of[t * r.k_max + j], a);
          EXPECT_EQ(d.weight[a], r.weight[t * r.k_max + j]);
        }
      EXPECT_TRUE(found);
    }
  // Gather then combine: expert output row a = (its expert + 1) * x[token].
  std::vector<float> x = test::random_floats(n * W, 3), xs(d.n_assign() * W), y(n * W);
  gather_rows(d, x.data(), xs.data(), W);
  for (int e = 0; e < E; ++e)
    for (int64_t a = d.offsets[e]; a < d.offsets[e + 1]; ++a)
      for (int i = 0; i < W; ++i) xs[a * W + i] *= float(e + 1);
  combine(r, d, xs.data(), y.data(), W);
  for (int64_t t = 0; t < n; ++t)
    for (int i = 0; i < W; ++i) {
      float want = 0;
      for (int j = 0; j < r.n_used[t]; ++j) want += r.weight[t * r.k_max + j] * float(r.expert[t * r.k_max + j] + 1) * x[t * W + i];
      EXPECT_FLOAT_EQ(y[t * W + i], want);
    }
}

TEST(MoeStats, CountsEntropyImbalanceAndExpertsUsed) {
  std::vector<float> logits = {0, 0, 0, 0, 5, 0, 0, 0};  // token 0 uniform, token 1 peaked
  TokenRouting r = route_all(logits, 4, topk(4, 1, false));
  LayerRoutingStats s;
  accumulate_stats(r, 0, 2, s);
  EXPECT_EQ(s.n_tokens, 2);
  EXPECT_EQ(s.tokens_per_expert, (std::vector<int64_t>{2, 0, 0, 0}));
  EXPECT_DOUBLE_EQ(s.load_imbalance(), 4.0);
  const double z = std::exp(5.0) + 3, p0 = std::exp(5.0) / z, p1 = 1 / z;
  EXPECT_NEAR(s.sum_entropy, std::log(4.0) - p0 * std::log(p0) - 3 * p1 * std::log(p1), 1e-5);
  EXPECT_DOUBLE_EQ(s.mean_experts_used(), 1.0);
}

// A random MoE layer whose weights are stored as `type`.
struct MoeLayerFixture {
  std::vector<std::vector<uint8_t>> bufs;
  LayerWeights l;
  TensorView store(DType type, int64_t rows, int64_t cols, uint32_t seed) {
    std::vector<float> f = test::random_floats(size_t(rows * cols), seed, -0.3f, 0.3f);
    std::vector<uint8_t> b(size_t(rows) * row_bytes(type, cols));
    for (int64_t r = 0; r < rows; ++r) ref::quantize_row(type, f.data() + r * cols, b.data() + r * row_bytes(type, cols), cols);
    bufs.push_back(std::move(b));
    return make_view(type, {rows, cols}, bufs.back().data());
  }
  MoeLayerFixture(DType type, int n_expert, int64_t E, int64_t F, bool shared) {
    bufs.reserve(size_t(4 * n_expert + 8));
    l.ffn_gate_inp = store(DType::F32, n_expert, E, 7);
    for (int e = 0; e < n_expert; ++e)
      l.experts.push_back({store(type, F, E, 100 + e), store(type, F, E, 200 + e), store(type, E, F, 300 + e)});
    if (shared) {
      l.shared = {store(type, 2 * F, E, 11), store(type, 2 * F, E, 12), store(type, E, 2 * F, 13)};
      l.ffn_gate_inp_shexp = store(DType::F32, 1, E, 14);
      l.ffn_gate_inp_shexp.n_dims = 1;
      l.ffn_gate_inp_shexp.shape = {E, 1, 1, 1};
    }
  }
};

double max_rel_err(const std::vector<float>& got, const std::vector<float>& want) {
  double scale = 0, err = 0;
  for (size_t i = 0; i < want.size(); ++i) scale = std::max(scale, double(std::abs(want[i])));
  for (size_t i = 0; i < want.size(); ++i) err = std::max(err, double(std::abs(got[i] - want[i])));
  return err / scale;
}

// The staged fast path (grouped matmuls, one pass for decode) equals the token-by-token
// scalar reference: f32 activations to float rounding; quantised activations (llama.cpp's
// arithmetic) within their rounding.
TEST(MoeFfn, StagedForwardMatchesScalarReference) {
  ThreadPool pool(2);
  const int64_t E = 64, F = 96;
  for (DType type : {DType::F32, DType::F16, DType::Q8_0, DType::Q4_0, DType::Q4_K}) {
    const int64_t Ek = type == DType::Q4_K ? 256 : E, Fk = type == DType::Q4_K ? 256 : F;  // whole k-quant blocks
    MoeLayerFixture fx(type, 8, Ek, Fk, /*shared=*/true);
    for (RouteParams p : {topk(8, 2, true), topk(8, 1, false), topp(8, 0.6f, 1, 5)}) {
      for (int64_t n : {int64_t(1), int64_t(37)}) {
        std::vector<float> x = test::random_floats(size_t(n * Ek), 5), want(size_t(n * Ek));
        moe_ffn_reference(fx.l, FfnAct::SiLU, p, x.data(), n, Ek, want.data());
        for (bool qa : {false, true}) {
          std::vector<float> got = x;  // in place, as the session calls it
          RouteSegment seg{0, n, &p};
          MoeFfnArgs a{&fx.l, FfnAct::SiLU, qa, {&seg, 1}};
          MoeScratch s;
          LayerRoutingStats stats;
          moe_ffn_forward(a, got.data(), n, Ek, got.data(), s, pool, &stats);
          const bool exact_path = !qa || type == DType::F32 || type == DType::F16;
          EXPECT_LT(max_rel_err(got, want), exact_path ? 1e-5 : 0.03)
              << dtype_name(type) << " n=" << n << " top_k=" << p.top_k << " top_p=" << p.top_p << " quantised acts " << qa;
          EXPECT_EQ(stats.n_tokens, n);
        }
      }
    }
  }
}

// Segments route with their own settings: rows 0..9 top-1, rows 10..19 top-3.
TEST(MoeFfn, EachSegmentRoutesWithItsOwnSettings) {
  ThreadPool pool(2);
  const int64_t E = 32, F = 32;
  MoeLayerFixture fx(DType::F32, 4, E, F, false);
  RouteParams one = topk(4, 1, false), three = topk(4, 3, false);
  std::vector<float> x = test::random_floats(20 * E, 9), want(20 * E), got(20 * E);
  moe_ffn_reference(fx.l, FfnAct::SiLU, one, x.data(), 10, E, want.data());
  moe_ffn_reference(fx.l, FfnAct::SiLU, three, x.data() + 10 * E, 10, E, want.data() + 10 * E);
  RouteSegment segs[] = {{0, 10, &one}, {10, 10, &three}};
  MoeScratch s;
  LayerRoutingStats stats;
  moe_ffn_forward(MoeFfnArgs{&fx.l, FfnAct::SiLU, false, segs}, x.data(), 20, E, got.data(), s, pool, &stats);
  EXPECT_LT(max_rel_err(got, want), 1e-5);
  EXPECT_DOUBLE_EQ(stats.mean_experts_used(), 2.0);
}

const char* kMixtral = "tests/golden/data/models/mixtral-e8-top2";

TEST(MoeSession, ExpertsUsedOverrideChangesOutputAndStats) {
  auto m = load_model(kMixtral);
  ASSERT_EQ(m->hp.n_expert, 8);
  ASSERT_EQ(m->routing.top_k, 2);
  ThreadPool pool(2);
  std::vector<int32_t> ids = {5, 17, 300, 2, 999, 64};
  Session a(*m, 32, pool), b(*m, 32, pool);
  const float* pa = a.eval(ids, false);
  std::vector<float> top2(pa, pa + m->hp.n_vocab);
  RouteParams p = m->routing;
  p.top_k = 1;
  b.set_routing(p);
  const float* pb = b.eval(ids, false);
  double diff = 0;
  for (int v = 0; v < m->hp.n_vocab; ++v) diff = std::max(diff, double(std::abs(pb[v] - top2[size_t(v)])));
  EXPECT_GT(diff, 1e-3);
  for (const LayerRoutingStats& s : b.routing_stats()) {
    EXPECT_EQ(s.n_tokens, int64_t(ids.size()));
    EXPECT_DOUBLE_EQ(s.mean_experts_used(), 1.0);
    EXPECT_GE(s.load_imbalance(), 1.0);
    EXPECT_GT(s.mean_entropy(), 0.0);
  }
  b.reset_routing_stats();
  EXPECT_EQ(b.routing_stats()[0].n_tokens, 0);
}

TEST(MoeSession, BadRoutingIsRejectedWithAMessage) {
  auto m = load_model(kMixtral);
  ThreadPool pool(1);
  Session s(*m, 16, pool);
  RouteParams p = m->routing;
  p.top_k = 9;
  try {
    s.set_routing(p);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("1..8"), std::string::npos) << e.what();
  }
  p = m->routing;
  p.top_p = 1.5f;
  EXPECT_THROW(s.set_routing(p), Error);
  auto dense = load_model("tests/golden/data/models/llama-gqa4-untied");
  Session d(*dense, 16, pool);
  EXPECT_THROW(d.set_routing(m->routing), Error);
}

}  // namespace
}  // namespace mf

namespace mf {
namespace {

// A merged-expert GGUF tensor whose shape disagrees with the expert count is named.
TEST(MoeGguf, MergedExpertTensorOfTheWrongShapeIsNamed) {
  const std::string path = "tests/golden/data/llamacpp/moe/mixtral-e8-top2-q8_0.gguf";
  auto m = load_model(path);
  ASSERT_EQ(m->w.layers[0].experts.size(), 8u);
  auto g = std::shared_ptr<GgufFile>(GgufFile::open(path));
  TensorLookup lookup = [&](const std::string& name) {
    const GgufTensorInfo* t = g->find_tensor(name);
    TensorView v = t ? t->view : TensorView{};
    if (name == "blk.1.ffn_up_exps.weight") v.shape[0] = 7;  // seven experts where eight are declared
    return v;
  };
  try {
    bind_weights(*m, lookup, /*use_gguf_names=*/true, path);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'blk.1.ffn_up_exps.weight' has shape [7, 32, 64], expected [8, 32, 64]"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace mf
