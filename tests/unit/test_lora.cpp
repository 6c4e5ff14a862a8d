// LoRA adapters in the engine: the routed update kernel against its scalar reference, Arrow's
// prototypes and choices against brute force, an adapter applied per token against the same
// adapter merged into the weights, slots with different adapters in one batched step against
// each alone, the PEFT writer and reader round trip, and the errors for bad adapters.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "adapters/glider.h"
#include "adapters/lora_io.h"
#include "adapters/lora_library.h"
#include "core/error.h"
#include "core/half.h"
#include "formats/safetensors.h"
#include "model/session.h"
#include "ops/lora.h"
#include "test_util.h"

namespace mf {
namespace {

const char* kFixture = "tests/golden/data/models/llama-gqa4-untied";

TEST(LoraKernel, FastEqualsReferenceOnOddShapesAndManyRows) {
  ThreadPool pool(2);
  for (auto [n_in, n_out, n_rows] : {std::tuple{5, 3, 1}, std::tuple{37, 29, 3}, std::tuple{64, 96, 40}, std::tuple{576, 193, 70},
                                      std::tuple{576, 1531, 1}, std::tuple{1531, 77, 1}}) {
    std::vector<std::vector<float>> as, bts;
    std::vector<LoraFactors> f;
    const int64_t ranks[] = {1, 4, 7, 8};
    for (int a = 0; a < 4; ++a) {
      as.push_back(test::random_floats(size_t(ranks[a] * n_in), 10 + a));
      bts.push_back(test::random_floats(size_t(ranks[a] * n_out), 20 + a));
    }
    for (int a = 0; a < 4; ++a) f.push_back(LoraFactors{as[a].data(), bts[a].data(), ranks[a]});
    std::vector<LoraTerm> terms;
    for (int r = 0; r < n_rows; ++r)
      for (int a = 0; a < 4; ++a)
        if ((r + a) % 3 != 0) terms.push_back(LoraTerm{r, a, 0.25f * float(a + 1)});
    const std::vector<float> x = test::random_floats(size_t(n_rows * n_in), 1);
    std::vector<float> y_ref = test::random_floats(size_t(n_rows * n_out), 2), y = y_ref;
    ref::lora_add(f, terms, x.data(), n_in, y_ref.data(), n_out);
    ops::lora_add(f, terms, x.data(), n_in, y.data(), n_out, pool);
    for (size_t i = 0; i < y.size(); ++i) ASSERT_NEAR(y[i], y_ref[i], 1e-4f * (1 + std::fabs(y_ref[i]))) << n_in << "x" << n_out << " @" << i;
    // The same with f16 factors: the fast path against the reference on the same f16 values.
    std::vector<std::vector<uint16_t>> a16(4), bt16(4);
    std::vector<LoraFactors> f16;
    for (int a = 0; a < 4; ++a) {
      for (float v : as[a]) a16[a].push_back(f32_to_fp16(v));
      for (float v : bts[a]) bt16[a].push_back(f32_to_fp16(v));
      f16.push_back(LoraFactors{a16[a].data(), bt16[a].data(), ranks[a], true});
    }
    std::vector<float> z_ref = test::random_floats(size_t(n_rows * n_out), 2), z = z_ref;
    ref::lora_add(f16, terms, x.data(), n_in, z_ref.data(), n_out);
    ops::lora_add(f16, terms, x.data(), n_in, z.data(), n_out, pool);
    for (size_t i = 0; i < z.size(); ++i) {
      ASSERT_NEAR(z[i], z_ref[i], 1e-4f * (1 + std::fabs(z_ref[i]))) << "f16 " << n_in << "x" << n_out << " @" << i;
      ASSERT_NEAR(z[i], y_ref[i], 2e-2f * (1 + std::fabs(y_ref[i]))) << "f16 against f32 @" << i;
    }
  }
}

TEST(LoraKernel, ColumnSplitsAddUpToTheReference) {
  const int64_t n_in = 100, n_out = 203, rank = 5;
  const std::vector<float> a = test::random_floats(size_t(rank * n_in), 3), bt = test::random_floats(size_t(rank * n_out), 4);
  const std::vector<float> a2 = test::random_floats(size_t(rank * n_in), 5), bt2 = test::random_floats(size_t(rank * n_out), 6);
  const LoraFactors f[] = {{a.data(), bt.data(), rank, false}, {a2.data(), bt2.data(), rank, false}};
  const std::vector<LoraTerm> terms = {{0, 0, 0.3f}, {0, 1, 0.7f}, {1, 1, -1.5f}};
  const std::vector<float> x = test::random_floats(size_t(2 * n_in), 7);
  std::vector<float> want(size_t(2 * n_out), 0.5f), got = want, t;
  ref::lora_add(f, terms, x.data(), n_in, want.data(), n_out);
  for (auto [o0, o1] : {std::pair{0, 61}, std::pair{61, 64}, std::pair{64, 203}})
    ops::lora_add_columns(f, terms, x.data(), n_in, got.data(), n_out, o0, o1, t);
  for (size_t i = 0; i < want.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-4f * (1 + std::fabs(want[i]))) << i;
}

// A random adapter on every target of the fixture's layers.
LoraAdapter random_adapter(const Model& m, const std::string& name, uint32_t seed, int64_t rank = 4) {
  LoraAdapter a;
  a.name = name;
  a.source = "random";
  a.format = "peft";
  a.arch = m.arch.name;
  a.rank = rank;
  a.alpha = 2.0f * float(rank);
  a.layers.resize(size_t(m.hp.n_layer));
  for (int il = 0; il < m.hp.n_layer; ++il) {
    const LayerWeights& l = m.w.layers[size_t(il)];
    const TensorView* ws[] = {&l.wq, &l.wk, &l.wv, &l.wo, &l.ffn_gate, &l.ffn_up, &l.ffn_down};
    for (int t = 0; t < kNumLoraTargets; ++t) {
      LoraModule& mod = a.layers[size_t(il)][size_t(t)];
      mod.rank = rank;
      mod.n_in = ws[t]->shape[1];
      mod.n_out = ws[t]->shape[0];
      mod.scale = a.alpha / float(rank);
      mod.a = test::random_floats(size_t(rank * mod.n_in), seed++, -0.2f, 0.2f);
      mod.bt = test::random_floats(size_t(rank * mod.n_out), seed++, -0.2f, 0.2f);
    }
  }
  bind_lora(a, m);
  return a;
}

std::vector<float> logits_of(Session& s, const std::vector<int32_t>& tokens) {
  s.reset();
  const float* l = s.eval(tokens, /*all_logits=*/true);
  return std::vector<float>(l, l + tokens.size() * size_t(s.model().hp.n_vocab));
}

TEST(LoraAdapter, PerTokenUpdateEqualsTheMergedWeights) {
  auto m = load_model(kFixture);
  auto lib = std::make_shared<LoraLibrary>();
  lib->adapters.push_back(random_adapter(*m, "a", 100));
  RoutedLora lora(lib, make_lora_router(*lib, "a", 1));
  ThreadPool pool(2);
  const std::vector<int32_t> tokens = {1, 5, 9, 2, 7, 3};
  Session s(*m, 32, pool);
  s.set_numerics(Numerics{false, false});
  const std::vector<float> base = logits_of(s, tokens);
  s.set_adapter(0, &lora);
  const std::vector<float> routed = logits_of(s, tokens);
  auto merged = load_model(kFixture);
  merge_lora(*merged, lib->adapters[0]);
  Session sm(*merged, 32, pool);
  sm.set_numerics(Numerics{false, false});
  const std::vector<float> want = logits_of(sm, tokens);
  double moved = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    ASSERT_NEAR(routed[i], want[i], 1e-4f * (1 + std::fabs(want[i]))) << i;
    moved = std::max(moved, double(std::fabs(want[i] - base[i])));
  }
  EXPECT_GT(moved, 1e-2) << "the adapter should change the logits";
  EXPECT_EQ(lora.usage().picks[0], int64_t(tokens.size()) * m->hp.n_layer * kNumLoraTargets);
}

TEST(LoraAdapter, UniformRouteEqualsMergingTheAverage) {
  auto m = load_model(kFixture);
  auto lib = std::make_shared<LoraLibrary>();
  lib->adapters.push_back(random_adapter(*m, "a", 100));
  lib->adapters.push_back(random_adapter(*m, "b", 300));
  RoutedLora lora(lib, make_lora_router(*lib, "uniform", 2));
  ThreadPool pool(2);
  const std::vector<int32_t> tokens = {4, 8, 15, 16, 23};
  Session s(*m, 32, pool);
  s.set_numerics(Numerics{false, false});
  s.set_adapter(0, &lora);
  const std::vector<float> routed = logits_of(s, tokens);
  auto merged = load_model(kFixture);
  merge_lora(*merged, lib->adapters[0], 0.5f);
  merge_lora(*merged, lib->adapters[1], 0.5f);
  Session sm(*merged, 32, pool);
  sm.set_numerics(Numerics{false, false});
  const std::vector<float> want = logits_of(sm, tokens);
  for (size_t i = 0; i < want.size(); ++i) ASSERT_NEAR(routed[i], want[i], 1e-4f * (1 + std::fabs(want[i]))) << i;
}

TEST(LoraAdapter, SlotsWithDifferentAdaptersInOneStepEqualEachAlone) {
  auto m = load_model(kFixture);
  auto lib = std::make_shared<LoraLibrary>();
  for (int a = 0; a < 3; ++a) lib->adapters.push_back(random_adapter(*m, "ad" + std::to_string(a), 1000 + 100 * a));
  RoutedLora first(lib, make_lora_router(*lib, "ad0", 1)), second(lib, make_lora_router(*lib, "ad2", 1)),
      arrow(lib, make_lora_router(*lib, "arrow", 2));
  LinearAdapter* per_slot[] = {&first, nullptr, &second, &arrow};
  const std::vector<std::vector<int32_t>> seqs = {{1, 2, 3}, {4, 5}, {6, 7, 8, 9}, {10, 11}};
  ThreadPool pool(2);
  Session batch(*m, 32, pool, 4);
  std::vector<SeqInput> in;
  for (int s = 0; s < 4; ++s) {
    batch.set_adapter(s, per_slot[s]);
    in.push_back(SeqInput{s, seqs[size_t(s)], LogitRows::All});
  }
  const float* out = batch.step(in);
  const int64_t V = m->hp.n_vocab;
  int64_t row = 0;
  for (int s = 0; s < 4; ++s) {
    Session alone(*m, 32, pool);
    alone.set_adapter(0, per_slot[s]);
    const std::vector<float> want = logits_of(alone, seqs[size_t(s)]);
    for (size_t i = 0; i < want.size(); ++i)
      ASSERT_NEAR(out[row * V + int64_t(i)], want[i], 1e-4f * (1 + std::fabs(want[i]))) << "slot " << s << " @" << i;
    row += int64_t(seqs[size_t(s)].size());
  }
}

TEST(LoraAdapter, ArrowDecodeTokenByTokenEqualsPrefill) {
  auto m = load_model(kFixture);
  auto lib = std::make_shared<LoraLibrary>();
  for (int a = 0; a < 4; ++a) lib->adapters.push_back(random_adapter(*m, "ad" + std::to_string(a), 2000 + 100 * a));
  auto router = make_lora_router(*lib, "arrow", 2);
  RoutedLora prefill(lib, router), decode(lib, router);
  const std::vector<int32_t> tokens = {3, 1, 4, 1, 5, 9, 2, 6};
  ThreadPool pool(2);
  Session a(*m, 32, pool), b(*m, 32, pool);
  a.set_adapter(0, &prefill);
  b.set_adapter(0, &decode);
  const std::vector<float> want = logits_of(a, tokens);
  const int64_t V = m->hp.n_vocab;
  for (size_t t = 0; t < tokens.size(); ++t) {
    const float* got = b.eval({&tokens[t], 1}, false);  // one row: the column-split path
    for (int64_t v = 0; v < V; ++v) ASSERT_NEAR(got[v], want[t * size_t(V) + size_t(v)], 1e-4f * (1 + std::fabs(want[t * size_t(V) + size_t(v)]))) << t;
  }
  EXPECT_EQ(prefill.usage().picks, decode.usage().picks);
  EXPECT_EQ(prefill.usage().updates, decode.usage().updates);
}

TEST(LoraRouter, ArrowPrototypeIsTheTopRightSingularVectorOfBA) {
  LoraModule mod;
  mod.rank = 3;
  mod.n_in = 11;
  mod.n_out = 7;
  mod.a = test::random_floats(33, 5);
  mod.bt = test::random_floats(21, 6);
  const std::vector<float> v = lora_top_right_singular_vector(mod);
  // Power iteration on (BA)^T (BA), from scratch in doubles.
  std::vector<double> ba(77, 0.0), u(11, 1.0);
  for (int o = 0; o < 7; ++o)
    for (int i = 0; i < 11; ++i)
      for (int j = 0; j < 3; ++j) ba[size_t(o * 11 + i)] += double(mod.bt[size_t(j * 7 + o)]) * mod.a[size_t(j * 11 + i)];
  for (int it = 0; it < 500; ++it) {
    std::vector<double> w(7, 0.0), z(11, 0.0);
    for (int o = 0; o < 7; ++o)
      for (int i = 0; i < 11; ++i) w[size_t(o)] += ba[size_t(o * 11 + i)] * u[size_t(i)];
    for (int o = 0; o < 7; ++o)
      for (int i = 0; i < 11; ++i) z[size_t(i)] += ba[size_t(o * 11 + i)] * w[size_t(o)];
    double norm = 0;
    for (double e : z) norm += e * e;
    for (int i = 0; i < 11; ++i) u[size_t(i)] = z[size_t(i)] / std::sqrt(norm);
  }
  double dot = 0;
  for (int i = 0; i < 11; ++i) dot += u[size_t(i)] * v[size_t(i)];
  EXPECT_NEAR(std::fabs(dot), 1.0, 1e-5);
}

TEST(LoraRouter, ArrowChoosesTheTopKByAbsoluteProjectionWithSoftmaxWeights) {
  auto m = load_model(kFixture);
  std::vector<LoraAdapter> lib;
  for (int a = 0; a < 5; ++a) lib.push_back(random_adapter(*m, "x" + std::to_string(a), 50 + 40 * a));
  ArrowRouter router(lib, 2);
  const int64_t E = m->hp.n_embd;
  const std::vector<float> x = test::random_floats(size_t(6 * E), 77);
  std::vector<LoraTerm> terms;
  std::vector<float> scratch;
  ThreadPool pool(2);
  router.route(1, 0, x.data(), 6, E, terms, scratch, &pool, nullptr);
  ASSERT_EQ(terms.size(), 12u);
  for (int t = 0; t < 6; ++t) {
    std::vector<std::pair<double, int>> s;
    for (int a = 0; a < 5; ++a) {
      double d = 0;
      for (int64_t i = 0; i < E; ++i) d += double(router.prototype(1, 0, a)[i]) * x[size_t(t * E + i)];
      s.emplace_back(std::fabs(d), a);
    }
    std::sort(s.rbegin(), s.rend());
    EXPECT_EQ(terms[size_t(2 * t)].adapter, s[0].second);
    EXPECT_EQ(terms[size_t(2 * t + 1)].adapter, s[1].second);
    const double w0 = 1.0 / (1.0 + std::exp(s[1].first - s[0].first));
    EXPECT_NEAR(terms[size_t(2 * t)].coef, w0, 1e-5);
    EXPECT_NEAR(terms[size_t(2 * t)].coef + terms[size_t(2 * t + 1)].coef, 1.0, 1e-6);
  }
}

TEST(LoraGlider, PriorFavoursTheMatchingDescriptionAndBiasesArrow) {
  auto m = load_model("models/default");
  ThreadPool pool(2);
  auto lib = std::make_shared<LoraLibrary>();
  const std::vector<std::string> desc = {"Solve grade school math word problems step by step.",
                                         "Continue Python source code.", "Write the next sentence of a novel."};
  for (int a = 0; a < 3; ++a) {
    lib->adapters.push_back(init_lora(*m, "t" + std::to_string(a), 4, 8.0f, {"all"}, true, 70 + a));
    lib->adapters.back().description = desc[size_t(a)];
  }
  const std::vector<float> e = embed_text(*m, pool, desc[1]);
  double norm = 0;
  for (float v : e) norm += double(v) * v;
  EXPECT_NEAR(norm, 1.0, 1e-5);
  EXPECT_EQ(e, embed_text(*m, pool, desc[1]));  // deterministic
  auto index = std::make_shared<GlobalIndex>(build_global_index(*m, pool, *lib, 0.1f, 1.0f));
  const std::vector<float> lp = global_log_prior(*index, e);
  double total = 0;
  for (float v : lp) total += std::exp(double(v));
  EXPECT_NEAR(total, 1.0, 1e-5);
  EXPECT_EQ(std::max_element(lp.begin(), lp.end()) - lp.begin(), 1) << "a description is closest to itself";

  // Global routing: every token takes the prior's top adapter. GLIDER with a large alpha agrees;
  // with alpha 0 it is Arrow.
  const std::vector<int32_t> prompt = m->require_tokenizer().encode(desc[1], true);
  RoutedLora global(lib, make_lora_router(*lib, "global", 1)), glider(lib, make_lora_router(*lib, "glider", 1)),
      arrow(lib, make_lora_router(*lib, "arrow", 1));
  EXPECT_THROW(set_query(global, *m, pool, prompt), Error);  // no index yet
  for (RoutedLora* r : {&global, &glider}) r->set_global_index(index);
  set_query(global, *m, pool, prompt);
  Session s(*m, 64, pool);
  s.set_adapter(0, &global);
  s.eval(prompt, false);
  EXPECT_EQ(global.usage().picks[0] + global.usage().picks[2], 0);
  EXPECT_GT(global.usage().picks[1], 0);
  auto strong = std::make_shared<GlobalIndex>(*index);
  strong->alpha = 1000.0f;
  glider.set_global_index(strong);
  set_query(glider, *m, pool, prompt);
  s.reset();
  s.set_adapter(0, &glider);
  s.eval(prompt, false);
  EXPECT_EQ(glider.usage().picks, global.usage().picks);
  glider.set_prior(std::vector<float>(3, 0.0f));  // alpha 0: arrow's choices
  glider.reset_usage();
  s.reset();
  s.eval(prompt, false);
  s.reset();
  s.set_adapter(0, &arrow);
  s.eval(prompt, false);
  EXPECT_EQ(glider.usage().picks, arrow.usage().picks);
}

TEST(LoraRouter, GatesScoreStandardisedDotProductsAndPickTheTopK) {
  auto m = load_model(kFixture);
  std::vector<LoraAdapter> lib;
  for (int a = 0; a < 3; ++a) {
    lib.push_back(random_adapter(*m, "g" + std::to_string(a), 400 + 40 * a));
    for (auto& layer : lib.back().layers)
      for (LoraModule& mod : layer) mod.gate = test::random_floats(size_t(mod.n_in), 900 + a);
  }
  lib[2].layers[0][0].gate.clear();  // adapter 2 has no gate for layer 0's q_proj: never chosen there
  GateRouter router(lib, 2);
  const int64_t E = m->hp.n_embd;
  const std::vector<float> x = test::random_floats(size_t(5 * E), 31, -2.0f, 3.0f);
  auto z = [](const float* v, int64_t n) {
    double mean = 0, var = 0;
    for (int64_t i = 0; i < n; ++i) mean += v[i];
    mean /= double(n);
    for (int64_t i = 0; i < n; ++i) var += (v[i] - mean) * (v[i] - mean);
    std::vector<double> out(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) out[size_t(i)] = (v[i] - mean) / std::sqrt(var / double(n));
    return out;
  };
  for (int layer : {0, 1}) {
    std::vector<LoraTerm> terms;
    std::vector<float> scratch;
    router.route(layer, 0, x.data(), 5, E, terms, scratch, nullptr, nullptr);
    ASSERT_EQ(terms.size(), 10u);
    for (int t = 0; t < 5; ++t) {
      std::vector<std::pair<double, int>> s;
      const std::vector<double> xz = z(x.data() + t * E, E);
      for (int a = 0; a < 3; ++a) {
        const auto& g = lib[size_t(a)].layers[size_t(layer)][0].gate;
        if (g.empty()) continue;
        const std::vector<double> gz = z(g.data(), E);
        double d = 0;
        for (int64_t i = 0; i < E; ++i) d += gz[size_t(i)] * xz[size_t(i)];
        s.emplace_back(d / std::sqrt(double(E)), a);
      }
      std::sort(s.rbegin(), s.rend());
      EXPECT_EQ(terms[size_t(2 * t)].adapter, s[0].second) << "layer " << layer;
      EXPECT_EQ(terms[size_t(2 * t + 1)].adapter, s[1].second);
      EXPECT_NEAR(terms[size_t(2 * t)].coef, 1.0 / (1.0 + std::exp(s[1].first - s[0].first)), 1e-4);
    }
  }
  std::vector<LoraAdapter> none = {random_adapter(*m, "plain", 1)};
  EXPECT_THROW(GateRouter(none, 1), Error);
}

TEST(LoraIo, PeftWriteThenReadGivesTheSameFactors) {
  auto m = load_model(kFixture);
  LoraAdapter a = random_adapter(*m, "rt", 7, 3);
  a.layers[1][2] = LoraModule{};  // not every layer has every map
  a.layers[0][4].scale = 1.5f;    // a module with its own alpha (alpha_pattern)
  const std::string dir = test::temp_dir() + "/rt";
  write_peft_lora(dir, a, m->hp.head_dim);
  LoraAdapter b = load_lora(dir, *m);
  EXPECT_EQ(b.name, "rt");
  ASSERT_EQ(b.layers.size(), a.layers.size());
  for (size_t il = 0; il < a.layers.size(); ++il)
    for (int t = 0; t < kNumLoraTargets; ++t) {
      const LoraModule &x = a.layers[il][size_t(t)], &y = b.layers[il][size_t(t)];
      ASSERT_EQ(x.present(), y.present()) << il << " " << t;
      EXPECT_EQ(x.a, y.a);
      EXPECT_EQ(x.bt, y.bt);
      EXPECT_FLOAT_EQ(x.scale, y.scale);
    }
}

TEST(LoraIo, BadAdaptersAreRefusedWithTheReason) {
  auto m = load_model(kFixture);
  LoraAdapter a = random_adapter(*m, "bad", 9);
  const std::string dir = test::temp_dir();
  auto expect_error = [&](const std::string& path, const std::string& needle) {
    try {
      load_lora(path, *m);
      ADD_FAILURE() << "no error for " << path;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error(dir + "/missing", "does not exist");
  // Shapes of another base: a wider q_proj.
  LoraAdapter wide = a;
  wide.layers[0][0].n_in += 8;
  wide.layers[0][0].a.resize(size_t(wide.layers[0][0].rank * wide.layers[0][0].n_in));
  write_peft_lora(dir + "/wide", wide, m->hp.head_dim);
  expect_error(dir + "/wide", "another base model");
  // Rank mismatch between A and B.
  write_peft_lora(dir + "/rank", a, m->hp.head_dim);
  {
    std::vector<float> b(size_t(m->hp.n_embd_q() * 5));
    std::vector<float> aa(size_t(4 * m->hp.n_embd));
    write_safetensors(dir + "/rank/adapter_model.safetensors",
                      {{"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", make_view(DType::F32, {4, m->hp.n_embd}, aa.data())},
                       {"base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight", make_view(DType::F32, {m->hp.n_embd_q(), 5}, b.data())}});
  }
  expect_error(dir + "/rank", "rank mismatch");
  // An unknown target module.
  write_peft_lora(dir + "/lm", a, m->hp.head_dim);
  {
    std::vector<float> aa(size_t(4 * m->hp.n_embd)), b(size_t(m->hp.n_vocab * 4));
    write_safetensors(dir + "/lm/adapter_model.safetensors",
                      {{"base_model.model.lm_head.lora_A.weight", make_view(DType::F32, {4, m->hp.n_embd}, aa.data())},
                       {"base_model.model.lm_head.lora_B.weight", make_view(DType::F32, {m->hp.n_vocab, 4}, b.data())}});
  }
  expect_error(dir + "/lm", "unknown target module");
  // A truncated weights file, and a config that is not JSON.
  write_peft_lora(dir + "/cut", a, m->hp.head_dim);
  {
    const std::string bytes = test::read_file(dir + "/cut/adapter_model.safetensors");
    test::write_file(dir + "/cut/adapter_model.safetensors", bytes.substr(0, bytes.size() / 2));
  }
  expect_error(dir + "/cut", "adapter_model.safetensors");
  write_peft_lora(dir + "/badjson", a, m->hp.head_dim);
  test::write_file(dir + "/badjson/adapter_config.json", "{\"peft_type\": \"LORA\", \"r\": ");
  expect_error(dir + "/badjson", "invalid JSON");
  // Not LoRA at all.
  std::filesystem::create_directories(dir + "/ia3");
  test::write_file(dir + "/ia3/adapter_config.json", R"({"peft_type": "IA3"})");
  expect_error(dir + "/ia3", "is not LORA");
  // A model file given as an adapter.
  expect_error("tests/golden/data/llamacpp/moe/mixtral-e8-top2-q8_0.gguf", "general.type");
  // Libraries: empty, unknown names.
  EXPECT_THROW(load_lora_library({}, *m), Error);
  LoraLibrary lib;
  lib.adapters.push_back(a);
  try {
    make_lora_router(lib, "nope", 1);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown adapter 'nope'"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace mf
