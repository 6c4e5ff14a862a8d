// Stage 1 of expert construction (moe/expert_select.h): the neuron ranking and each layer's
// kept set, on a small random FFN stack.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "expert_stage_fixture.h"
#include "moe/down_refit.h"
#include "moe/expert_select.h"

namespace mf {
namespace {

std::vector<std::vector<float>> all_down(const Model& m) {
  std::vector<std::vector<float>> d;
  for (int il = 0; il < m.hp.n_layer; ++il) d.push_back(dense_down(m, il));
  return d;
}

bool subset(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {  // both ascending
  return std::includes(b.begin(), b.end(), a.begin(), a.end());
}

TEST(ExpertSelect, ActivationRankingIsTheScoreOrderAndWidthsNest) {
  auto m = test::tiny_ffn_model();
  std::vector<std::vector<float>> gram;
  const ExpertSpec spec = test::tiny_spec(*m, 200, 3, gram);
  const auto down = all_down(*m);
  for (bool centered : {false, true}) {
    SelectOptions o;
    o.density = 0.25;
    o.centered = centered;
    const NeuronRanking r = rank_neurons(*m, spec, down, o, nullptr);
    EXPECT_EQ(r.k, 16);  // round(0.25 * 64)
    for (int il = 0; il < m->hp.n_layer; ++il) {
      ASSERT_TRUE(r.forced[il].empty());
      // By hand: sqrt(E[a^2]) (or of the variance) times the column norm of down.
      const LayerStats& st = spec.stats[il];
      for (int64_t j = 0; j < m->hp.n_ff; j += 7) {
        double col = 0;
        for (int64_t e = 0; e < m->hp.n_embd; ++e) col += double(down[il][e * m->hp.n_ff + j]) * down[il][e * m->hp.n_ff + j];
        const double mean = st.act_sum[j] / 200.0, second = st.act_sq[j] / 200.0;
        EXPECT_NEAR(r.scores[il][j], std::sqrt(centered ? second - mean * mean : second) * std::sqrt(col), 1e-9) << j;
      }
      std::vector<int32_t> prev;
      for (int64_t w : {1, 8, 16, 40, 64}) {
        const std::vector<int32_t> kept = select_neurons(r, il, w, o);
        ASSERT_EQ(int64_t(kept.size()), w);
        EXPECT_TRUE(std::is_sorted(kept.begin(), kept.end()));
        EXPECT_EQ(kept, top_k_neurons(r.scores[il], w));
        EXPECT_TRUE(subset(prev, kept)) << "width " << w;
        prev = kept;
      }
    }
  }
}

TEST(ExpertSelect, SharedNeuronsComeFirstAtEveryWidth) {
  auto m = test::tiny_ffn_model();
  std::vector<std::vector<float>> gram, other_gram;
  const ExpertSpec spec = test::tiny_spec(*m, 200, 3, gram);
  const std::vector<LayerStats> pooled = test::tiny_spec(*m, 300, 50, other_gram).stats;
  SelectOptions o;
  o.shared_fraction = 0.25;
  o.density = 0.5;
  o.centered = true;
  const NeuronRanking r = rank_neurons(*m, spec, all_down(*m), o, &pooled);
  for (int il = 0; il < m->hp.n_layer; ++il) {
    // The pooled (uncentered) activation scores' top quarter of k.
    const std::vector<int32_t> want = top_k_neurons(neuron_scores(*m, il, &pooled[il], NeuronScore::Activation, 1), 8);
    EXPECT_EQ(r.forced[il], want);
    for (int64_t w : {4, 8, 20, 32})
      EXPECT_TRUE(w < 8 ? subset(select_neurons(r, il, w, o), want) : subset(want, select_neurons(r, il, w, o))) << w;
  }
  EXPECT_THROW(rank_neurons(*m, spec, all_down(*m), o, nullptr), Error);  // no pooled stats
}

TEST(ExpertSelect, ObsRankingGivesObsSelectAtEveryWidth) {
  auto m = test::tiny_ffn_model();
  std::vector<std::vector<float>> gram;
  const ExpertSpec spec = test::tiny_spec(*m, 300, 5, gram);
  const auto down = all_down(*m);
  SelectOptions o;
  o.obs = true;
  o.damp = 0.01;
  const NeuronRanking r = rank_neurons(*m, spec, down, o, nullptr);
  const int64_t E = m->hp.n_embd, F = m->hp.n_ff;
  for (int il = 0; il < m->hp.n_layer; ++il)
    for (int64_t w : {5, 16, 33})
      EXPECT_EQ(select_neurons(r, il, w, o),
                obs_select(down[il], E, F, gram[il].data(), spec.gram_stats[il].act_sum.data(), 300, w, o.damp))
          << "layer " << il << " width " << w;
  ExpertSpec no_gram = spec;
  no_gram.gram = nullptr;
  EXPECT_THROW(rank_neurons(*m, no_gram, down, o, nullptr), Error);
}

TEST(ExpertSelect, ObsOnSequentialMomentsChoosesOnThoseMoments) {
  auto m = test::tiny_ffn_model();
  std::vector<std::vector<float>> gram;
  const ExpertSpec spec = test::tiny_spec(*m, 300, 5, gram);
  SelectOptions o;
  o.obs = true;
  const NeuronRanking r = rank_neurons(*m, spec, all_down(*m), o, nullptr);
  // Other tokens and targets that drift from the dense output: another choice.
  const RefitMoments mo = test::layer_moments(*m, test::layer_tokens(*m, 1, 250, 77, 1.0f));
  const int64_t w = 20;
  std::vector<char> alive(size_t(m->hp.n_ff), 1);
  for (int32_t j : obs_removal_order_to(m->hp.n_embd, m->hp.n_ff, mo.gram.data(), mo.sum.data(), mo.out_cross.data(),
                                        mo.out_sum.data(), mo.tokens, w, o.damp))
    alive[size_t(j)] = 0;
  std::vector<int32_t> want;
  for (int32_t j = 0; j < m->hp.n_ff; ++j)
    if (alive[size_t(j)]) want.push_back(j);
  const std::vector<int32_t> got = select_neurons(r, 1, w, o, &mo);
  EXPECT_EQ(got, want);
  EXPECT_NE(got, select_neurons(r, 1, w, o));  // the dense ranking's choice differs
  // Scores other than OBS ignore the moments.
  SelectOptions by_score;
  const NeuronRanking rs = rank_neurons(*m, spec, all_down(*m), by_score, nullptr);
  EXPECT_EQ(select_neurons(rs, 1, w, by_score, &mo), select_neurons(rs, 1, w, by_score));
}

TEST(ExpertSelect, DataFreeScoresNeedNoStatisticsAndActivationDoes) {
  auto m = test::tiny_ffn_model();
  ExpertSpec bare;
  bare.name = "bare/0";
  const auto down = all_down(*m);
  SelectOptions o;
  o.score = NeuronScore::Random;
  o.seed = 4;
  const NeuronRanking a = rank_neurons(*m, bare, down, o, nullptr), b = rank_neurons(*m, bare, down, o, nullptr);
  EXPECT_EQ(a.scores, b.scores);
  o.seed = 5;
  EXPECT_NE(rank_neurons(*m, bare, down, o, nullptr).scores, a.scores);
  o.score = NeuronScore::Magnitude;  // ||gate_j|| ||up_j|| ||down[:, j]||
  const NeuronRanking mag = rank_neurons(*m, bare, down, o, nullptr);
  const std::vector<float> gate = test::dequantized(m->w.layers[0].ffn_gate), up = test::dequantized(m->w.layers[0].ffn_up);
  const int64_t E = m->hp.n_embd, F = m->hp.n_ff;
  for (int64_t j = 0; j < F; j += 9) {
    double g = 0, u = 0, d = 0;
    for (int64_t c = 0; c < E; ++c) g += double(gate[j * E + c]) * gate[j * E + c], u += double(up[j * E + c]) * up[j * E + c];
    for (int64_t e = 0; e < E; ++e) d += double(down[0][e * F + j]) * down[0][e * F + j];
    EXPECT_NEAR(mag.scores[0][j], std::sqrt(g * u * d), 1e-9) << j;
  }
  o.score = NeuronScore::Activation;
  EXPECT_THROW(rank_neurons(*m, bare, down, o, nullptr), Error);
}

TEST(ExpertSelect, QuantisedWidthsAreWholeBlocks) {
  auto q = test::tiny_ffn_model(DType::Q8_0, 2, 64, 128);
  EXPECT_EQ(neurons_for_density(*q, 0.3), 64);  // round(38.4) = 38, up to 2 blocks of 32
  EXPECT_EQ(neurons_for_density(*q, 0.01), 32);
  EXPECT_EQ(neurons_for_density(*q, 1.0), 128);
  auto f = test::tiny_ffn_model(DType::F32, 2, 64, 128);
  EXPECT_EQ(neurons_for_density(*f, 0.3), 38);
  EXPECT_EQ(neurons_for_density(*f, 0.001), 1);
}

}  // namespace
}  // namespace mf
