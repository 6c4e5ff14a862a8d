// Session: named hooks fire on every block with the documented shapes, incremental decode
// through the KV cache gives the same logits as one batched prefill, and a batched step over
// several slots (continuous batching, per-slot layer overrides) equals each sequence alone.
#include <gtest/gtest.h>

#include <map>

#include "core/error.h"
#include "model/session.h"
#include "test_serve_util.h"

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
  for (const char* name : {"attn_in", "attn_out", "ffn_resid", "ffn_in", "ffn_gate_act", "block_out"}) EXPECT_EQ(seen[name], m->hp.n_layer) << name;
}

TEST(Session, RunBlocksInPiecesEqualsTheFullPass) {
  auto m = load_model(kFixture);
  ThreadPool pool(2);
  const int L = int(m->hp.n_layer);
  ASSERT_GE(L, 2);
  const int64_t E = m->hp.n_embd;
  std::vector<int32_t> ids = {7, 100, 3, 900, 42};
  Session full(*m, 16, pool), pieces(*m, 16, pool);
  std::vector<std::vector<float>> want(static_cast<size_t>(L));  // block_out per layer [5, E]
  full.set_hook([&](const HookEvent& e) {
    if (e.name == "block_out") want[size_t(e.layer)].assign(e.data, e.data + e.n_tokens * e.width);
  });
  full.eval(ids, false);
  // From the embeddings, block 0 alone, then the others in one call: the same streams.
  std::vector<float> x(ids.size() * size_t(E));  // [5, E]
  pieces.embed(ids, x.data());
  pieces.run_blocks(x.data(), int64_t(ids.size()), 0, 0);
  for (size_t i = 0; i < x.size(); ++i) ASSERT_NEAR(x[i], want[0][i], 1e-5f);
  pieces.run_blocks(x.data(), int64_t(ids.size()), 1, L - 1);
  for (size_t i = 0; i < x.size(); ++i) ASSERT_NEAR(x[i], want[size_t(L - 1)][i], 1e-5f);
  EXPECT_EQ(pieces.n_past(), int64_t(ids.size()));
  EXPECT_THROW(pieces.run_blocks(x.data(), 5, 1, 0), Error);   // empty range
  EXPECT_THROW(pieces.run_blocks(x.data(), 5, 0, L), Error);   // past the last block
  EXPECT_THROW(pieces.run_blocks(x.data(), 17, 0, 0), Error);  // more than the context
  EXPECT_THROW(pieces.run_blocks(x.data(), 0, 0, 0), Error);
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

// Continuous batching: one step over several slots equals running each sequence alone.
namespace mf {
namespace {

// Greedy-free reference: logits of `tokens` appended to a fresh single-sequence session fed
// `history` first (with the given override).
std::vector<float> alone(const Model& m, ThreadPool& pool, const std::vector<int32_t>& history,
                         const std::vector<int32_t>& tokens, const std::vector<LayerWeights>* layers) {
  Session s(m, 64, pool);
  s.set_layers(layers);
  if (!history.empty()) s.eval(history, false);
  const float* l = s.eval(tokens, true);  // [n, V]
  return std::vector<float>(l, l + tokens.size() * m.hp.n_vocab);
}

void expect_rows_near(const float* got, const std::vector<float>& want, int64_t V, const std::string& what) {
  for (size_t i = 0; i < want.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-4f) << what << " row " << i / V << " col " << i % V;
}

TEST(SessionBatch, StepEqualsPerSequenceEvalWithMixedLengths) {
  auto m = load_model(kFixture);
  ThreadPool pool(2);
  const int64_t V = m->hp.n_vocab;
  std::vector<std::vector<int32_t>> prompts = {{7, 100, 3, 900, 42}, {5}, {11, 12, 13}};
  Session s(*m, 64, pool, 3);
  // Prefill all three in one step (slot order differs from input order on purpose).
  std::vector<SeqInput> in = {{2, prompts[2], LogitRows::All}, {0, prompts[0], LogitRows::Last}, {1, prompts[1], LogitRows::All}};
  const float* l = s.step(in);  // [3 + 1 + 1, V]
  expect_rows_near(l, alone(*m, pool, {}, prompts[2], nullptr), V, "slot 2 prefill");
  auto p0 = alone(*m, pool, {}, prompts[0], nullptr);
  expect_rows_near(l + 3 * V, std::vector<float>(p0.end() - V, p0.end()), V, "slot 0 last");
  expect_rows_near(l + 4 * V, alone(*m, pool, {}, prompts[1], nullptr), V, "slot 1 prefill");
  EXPECT_EQ(s.n_past(0), 5);
  EXPECT_EQ(s.n_past(1), 1);
  EXPECT_EQ(s.n_past(2), 3);

  // Decode: one token each, then a step with only two of the slots and a 2-token chunk.
  std::vector<int32_t> d0 = {77}, d1 = {78}, d2 = {79, 80};
  std::vector<SeqInput> dec = {{0, d0}, {1, d1}, {2, {d2.data(), 1}}};
  l = s.step(dec);  // [3, V]
  expect_rows_near(l, alone(*m, pool, prompts[0], d0, nullptr), V, "slot 0 decode");
  expect_rows_near(l + V, alone(*m, pool, prompts[1], d1, nullptr), V, "slot 1 decode");
  expect_rows_near(l + 2 * V, alone(*m, pool, prompts[2], {79}, nullptr), V, "slot 2 decode");
  std::vector<SeqInput> part = {{1, d2, LogitRows::All}, {2, {d2.data() + 1, 1}, LogitRows::None}};
  l = s.step(part);  // [2, V]: slot 1's two tokens only
  std::vector<int32_t> h1 = prompts[1];
  h1.push_back(78);
  expect_rows_near(l, alone(*m, pool, h1, d2, nullptr), V, "slot 1 chunk");
  EXPECT_EQ(s.n_past(2), 5);

  // A reset slot starts over and matches a fresh sequence.
  s.reset(1);
  std::vector<SeqInput> again = {{1, prompts[0]}};
  l = s.step(again);
  expect_rows_near(l, std::vector<float>(p0.end() - V, p0.end()), V, "slot 1 after reset");
}

TEST(SessionBatch, SlotsWithDifferentOverridesRunTheirOwnWeights) {
  auto m = load_model(kFixture);
  ThreadPool pool(2);
  const int64_t V = m->hp.n_vocab;
  test::TruncatedExpert half = test::truncated_expert(*m, m->hp.n_ff / 2);
  test::TruncatedExpert quarter = test::truncated_expert(*m, m->hp.n_ff / 4);
  std::vector<int32_t> a = {7, 100, 3}, b = {900, 42}, c = {1, 2, 3, 4}, d = {9};
  Session s(*m, 64, pool, 4);
  s.set_layers(0, &half.layers);
  s.set_layers(1, nullptr);
  s.set_layers(2, &quarter.layers);
  s.set_layers(3, &half.layers);  // shares slot 0's group
  std::vector<SeqInput> in = {{0, a}, {1, b}, {2, c}, {3, d}};
  const float* l = s.step(in);  // [4, V]
  auto last = [&](const std::vector<int32_t>& t, const std::vector<LayerWeights>* ov) {
    auto all = alone(*m, pool, {}, t, ov);
    return std::vector<float>(all.end() - V, all.end());
  };
  expect_rows_near(l, last(a, &half.layers), V, "half expert");
  expect_rows_near(l + V, last(b, nullptr), V, "dense");
  expect_rows_near(l + 2 * V, last(c, &quarter.layers), V, "quarter expert");
  expect_rows_near(l + 3 * V, last(d, &half.layers), V, "half expert, second sequence");
  // The override really changes the computation.
  auto dense_a = last(a, nullptr);
  float diff = 0;
  for (int64_t v = 0; v < V; ++v) diff = std::max(diff, std::abs(l[v] - dense_a[v]));
  EXPECT_GT(diff, 1e-3f);
}

TEST(SessionBatch, HooksFireOncePerOverrideGroup) {
  auto m = load_model(kFixture);
  ThreadPool pool(2);
  test::TruncatedExpert half = test::truncated_expert(*m, m->hp.n_ff / 2);
  Session s(*m, 16, pool, 3);
  s.set_layers(1, &half.layers);
  std::map<int64_t, int> gate_widths;  // width -> events
  int64_t rows = 0;
  s.set_hook([&](const HookEvent& e) {
    if (e.name == "ffn_gate_act") gate_widths[e.width]++;
    if (e.name == "block_out" && e.layer == 0) rows += e.n_tokens;
  });
  std::vector<int32_t> a = {1, 2}, b = {3, 4, 5}, c = {6};
  std::vector<SeqInput> in = {{0, a}, {1, b}, {2, c}};
  s.step(in);
  EXPECT_EQ(gate_widths[m->hp.n_ff], m->hp.n_layer);      // slots 0 and 2 together
  EXPECT_EQ(gate_widths[m->hp.n_ff / 2], m->hp.n_layer);  // slot 1's expert
  EXPECT_EQ(rows, 6);
}

TEST(SessionBatch, InvalidStepsChangeNothing) {
  auto m = load_model(kFixture);
  ThreadPool pool(2);
  Session s(*m, 8, pool, 2);
  std::vector<int32_t> t3 = {1, 2, 3}, t9(9, 1), bad = {int32_t(m->hp.n_vocab)};
  std::vector<SeqInput> ok = {{0, t3}};
  s.step(ok);
  auto expect_refused = [&](std::vector<SeqInput> in) {
    EXPECT_THROW(s.step(in), Error);
    EXPECT_EQ(s.n_past(0), 3);
    EXPECT_EQ(s.n_past(1), 0);
  };
  expect_refused({{1, t3}, {1, t3}});  // slot twice
  expect_refused({{2, t3}});           // no such slot
  expect_refused({{1, t3}, {0, t9}});  // slot 0 overflows (3 + 9 > 8)
  expect_refused({{1, bad}});          // token outside the vocabulary
  expect_refused({{1, {}}});           // no tokens
  expect_refused({});
  Session big(*m, 512, pool, 2);
  std::vector<int32_t> many(Session::kMaxBatch, 1);
  std::vector<SeqInput> over = {{0, many}, {1, t3}};
  EXPECT_THROW(big.step(over), Error);  // more rows than one step holds
  EXPECT_THROW(s.set_layers(5, nullptr), Error);
  EXPECT_THROW(Session(*m, 8, pool, 0), Error);
}

}  // namespace
}  // namespace mf
