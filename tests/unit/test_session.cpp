// Session: named hooks fire on every block with the documented shapes, and incremental
// decode through the KV cache gives the same logits as one batched prefill.
#include <gtest/gtest.h>

#include <map>

#include "core/error.h"
#include "model/session.h"

namespace mf {
namespace {

const char* kFixture = "tests/golden/data/models/llama-gqa4-untied";

TEST(Session, HooksReportEveryBlockIntermediate) {
  auto m = load_model(kFixture);
  ThreadPool pool(2);
  Session s(*m, 32, pool);
  std::map<std::string, int> seen;
  s.set_hook([&](const HookEvent& e) {
    seen[std::string(e.name)]++;
    EXPECT_EQ(e.n_tokens, 5);
    EXPECT_GE(e.layer, 0);
    EXPECT_LT(e.layer, m->hp.n_layer);
    int64_t want = e.name == "ffn_gate_act" ? m->hp.n_ff : e.name == "attn_out" ? m->hp.n_embd_q() : m->hp.n_embd;
    EXPECT_EQ(e.width, want) << e.name;
  });
  std::vector<int32_t> ids = {1, 2, 3, 4, 5};
  s.eval(ids, false);
  for (const char* name : {"attn_in", "attn_out", "ffn_in", "ffn_gate_act", "block_out"}) EXPECT_EQ(seen[name], m->hp.n_layer) << name;
}

TEST(Session, DecodeThroughCacheEqualsPrefill) {
  auto m = load_model(kFixture);
  ThreadPool pool(2);
  std::vector<int32_t> ids = {7, 100, 3, 900, 42, 5};
  Session batched(*m, 16, pool), stepwise(*m, 16, pool);
  const int64_t V = m->hp.n_vocab;
  const float* full = batched.eval(ids, true);  // [6, V]
  std::vector<float> want(full, full + ids.size() * V);
  for (size_t t = 0; t < ids.size(); ++t) {
    const float* step = stepwise.eval({&ids[t], 1}, false);  // [1, V]
    for (int64_t v = 0; v < V; ++v) ASSERT_NEAR(step[v], want[t * V + v], 1e-4f) << "position " << t;
  }
  EXPECT_THROW(stepwise.eval(std::vector<int32_t>(11, 1), false), Error);  // 6 + 11 > 16: context overflow
  EXPECT_THROW(stepwise.eval(std::vector<int32_t>{int32_t(V)}, false), Error);  // out of vocabulary
}

TEST(Session, LayerOverrideRunsTheGivenWeights) {
  auto m = load_model(kFixture);
  ThreadPool pool(2);
  std::vector<int32_t> ids = {7, 100, 3};
  Session dense(*m, 16, pool), same(*m, 16, pool);
  const int64_t V = m->hp.n_vocab;
  const float* d = dense.eval(ids, false);  // [1, V]
  std::vector<float> want(d, d + V);
  std::vector<LayerWeights> copy = m->w.layers;
  same.set_layers(&copy);
  const float* s = same.eval(ids, false);  // [1, V]
  for (int64_t v = 0; v < V; ++v) ASSERT_EQ(s[v], want[v]);
  // gate/up cut to half the neurons while down keeps all of them: inconsistent, refused.
  std::vector<LayerWeights> half = m->w.layers;
  half[0].ffn_gate = half[0].ffn_gate.row_range(0, m->hp.n_ff / 2);
  half[0].ffn_up = half[0].ffn_up.row_range(0, m->hp.n_ff / 2);
  EXPECT_THROW(same.set_layers(&half), Error);
  std::vector<LayerWeights> wrong(1);
  EXPECT_THROW(same.set_layers(&wrong), Error);
}

}  // namespace
}  // namespace mf
