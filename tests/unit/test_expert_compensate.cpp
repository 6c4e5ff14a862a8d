// Stage 2 of expert construction (moe/expert_compensate.h): each compensation's compact FFN,
// measured on the tokens it was fitted on, and the layer widths, on a small random FFN stack.
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>

#include "core/error.h"
#include "expert_stage_fixture.h"
#include "moe/down_refit.h"
#include "moe/expert_compensate.h"

namespace mf {
namespace {

constexpr int64_t kTokens = 300;
constexpr uint32_t kSeed = 21;

// Mean over the tokens of || y - (down a_kept + bias) ||^2, with a from ffn's gate and up rows
// when it has them (else the tokens' own activations).
double fit_error(const Model& m, const test::LayerTokens& t, const std::vector<int32_t>& kept, const CompactFfn& ffn) {
  const int64_t E = m.hp.n_embd, F = m.hp.n_ff, k = int64_t(kept.size());
  double err = 0;
  for (int64_t i = 0; i < t.T; ++i) {
    std::vector<double> a(static_cast<size_t>(k));  // [k]
    for (int64_t c = 0; c < k; ++c) {
      if (ffn.gate.empty()) {
        a[c] = t.a[size_t(i * F + kept[c])];
        continue;
      }
      double zg = 0, zu = 0;
      for (int64_t e = 0; e < E; ++e) zg += ffn.gate[c * E + e] * t.x[i * E + e], zu += ffn.up[c * E + e] * t.x[i * E + e];
      a[c] = zg / (1.0 + std::exp(-zg)) * zu;
    }
    for (int64_t r = 0; r < E; ++r) {
      double p = ffn.bias.empty() ? 0.0 : ffn.bias[r];
      for (int64_t c = 0; c < k; ++c) p += ffn.down[r * k + c] * a[c];
      err += (t.y[i * E + r] - p) * (t.y[i * E + r] - p);
    }
  }
  return err / double(t.T);
}

std::vector<int32_t> every_other(int64_t n) {
  std::vector<int32_t> v;
  for (int32_t j = 0; j < n; j += 2) v.push_back(j);
  return v;
}

TEST(ExpertCompensate, NoneKeepsTheColumnsMeanAddsThePrunedMeansLeastSquaresFitsBest) {
  auto m = test::tiny_ffn_model();
  std::vector<std::vector<float>> gram;
  const ExpertSpec spec = test::tiny_spec(*m, kTokens, kSeed, gram);
  const int il = 1;
  const std::vector<float> down = dense_down(*m, il);
  const test::LayerTokens t = test::layer_tokens(*m, il, kTokens, kSeed + il);  // the tokens behind spec's stats
  const std::vector<int32_t> kept = every_other(m->hp.n_ff);
  const int64_t E = m->hp.n_embd, F = m->hp.n_ff, k = int64_t(kept.size());
  const LayerFitInput in{*m, spec, il, down};
  CompensateOptions o;
  const CompactFfn none = compensate_layer(in, kept, o);
  EXPECT_TRUE(none.bias.empty() && none.gate.empty() && none.up.empty());
  ASSERT_EQ(int64_t(none.down.size()), E * k);
  for (int64_t r = 0; r < E; ++r)
    for (int64_t c = 0; c < k; ++c) ASSERT_EQ(none.down[r * k + c], down[r * F + kept[c]]);
  o.method = Compensation::Mean;
  const CompactFfn mean = compensate_layer(in, kept, o);
  EXPECT_EQ(mean.down, none.down);
  ASSERT_EQ(int64_t(mean.bias.size()), E);
  for (int64_t r = 0; r < E; ++r) {
    double want = 0;
    for (int64_t j = 1; j < F; j += 2) want += spec.stats[il].act_sum[j] / double(kTokens) * down[r * F + j];
    EXPECT_NEAR(mean.bias[r], want, 1e-5 * (1 + std::fabs(want))) << r;
  }
  o.method = Compensation::LeastSquares;
  const CompactFfn lsq = compensate_layer(in, kept, o);
  const DownRefit want = refit_down(down, E, F, gram[il].data(), spec.gram_stats[il].act_sum.data(), kTokens, kept, o.damp);
  EXPECT_EQ(lsq.down, want.down);
  EXPECT_EQ(lsq.bias, want.bias);
  const double e_none = fit_error(*m, t, kept, none), e_mean = fit_error(*m, t, kept, mean), e_lsq = fit_error(*m, t, kept, lsq);
  EXPECT_LT(e_mean, e_none);
  EXPECT_LT(e_lsq, e_mean * 0.9) << e_lsq << " vs " << e_mean;
  // Every neuron kept: least squares gives back the dense layer.
  std::vector<int32_t> all(static_cast<size_t>(F));
  std::iota(all.begin(), all.end(), 0);
  o.damp = 1e-7;
  const CompactFfn full = compensate_layer(in, all, o);
  for (size_t i = 0; i < down.size(); ++i) ASSERT_NEAR(full.down[i], down[i], 2e-3 * (1 + std::fabs(down[i]))) << i;
  // Missing inputs.
  ExpertSpec bare;
  bare.name = "bare/0";
  EXPECT_THROW(compensate_layer({*m, bare, il, down}, kept, o), Error);  // no Gram matrices
  o.method = Compensation::Mean;
  EXPECT_THROW(compensate_layer({*m, bare, il, down}, kept, o), Error);  // no activation sums
}

TEST(ExpertCompensate, SequentialFitsItsTargetsAndRowRefitsLowerTheError) {
  auto m = test::tiny_ffn_model();
  std::vector<std::vector<float>> gram;
  const ExpertSpec spec = test::tiny_spec(*m, kTokens, kSeed, gram);
  const int il = 0;
  const std::vector<float> down = dense_down(*m, il);
  const test::LayerTokens t = test::layer_tokens(*m, il, kTokens, 99, 0.5f);  // targets drift from down a
  const RefitMoments mo = test::layer_moments(*m, t);
  const SequentialRefit::Samples smp{t.x, t.y, t.T};
  const std::vector<int32_t> kept = every_other(m->hp.n_ff);
  const int64_t E = m->hp.n_embd, F = m->hp.n_ff;
  CompensateOptions o;
  o.method = Compensation::LeastSquares;
  o.sequential.on = true;
  const CompactFfn seq = compensate_layer({*m, spec, il, down, &mo, &smp}, kept, o);
  const DownRefit want = refit_down_to(E, F, mo.gram.data(), mo.sum.data(), mo.out_cross.data(), mo.out_sum.data(), mo.tokens,
                                       kept, o.damp);
  EXPECT_EQ(seq.down, want.down);
  EXPECT_EQ(seq.bias, want.bias);
  EXPECT_TRUE(seq.gate.empty());
  // On these targets it beats the plain fit toward the dense outputs.
  CompensateOptions plain = o;
  plain.sequential.on = false;
  const double e_seq = fit_error(*m, t, kept, seq);
  EXPECT_LT(e_seq, fit_error(*m, t, kept, compensate_layer({*m, spec, il, down}, kept, plain)));
  // Re-fitting the up rows, then also the gate rows, lowers it further.
  const std::vector<float> gate = test::dequantized(m->w.layers[il].ffn_gate);
  double last = e_seq;
  for (RefitRows rows : {RefitRows::Up, RefitRows::GateUp}) {
    o.sequential.rows = rows;
    o.sequential.rounds = 2;
    const CompactFfn f = compensate_layer({*m, spec, il, down, &mo, &smp}, kept, o);
    ASSERT_EQ(int64_t(f.gate.size()), int64_t(kept.size()) * E);
    ASSERT_EQ(f.up.size(), f.gate.size());
    bool gate_moved = false;
    for (size_t c = 0; c < kept.size(); ++c)
      for (int64_t e = 0; e < E; ++e) gate_moved |= f.gate[c * E + e] != gate[kept[c] * E + e];
    EXPECT_EQ(gate_moved, rows == RefitRows::GateUp);
    const double e = fit_error(*m, t, kept, f);
    EXPECT_LT(e, last) << refit_rows_name(rows);
    last = e;
  }
  EXPECT_THROW(compensate_layer({*m, spec, il, down, &mo, nullptr}, kept, o), Error);  // rows need the samples
  EXPECT_THROW(compensate_layer({*m, spec, il, down}, kept, o), Error);                 // and the moments
}

// A 3-layer FFN model (32 wide, 128 neurons), its domain's statistics, dense ffn_down copies
// and the neuron ranking at D=0.25: the inputs of layer_widths. Built in place (spec points at gram).
struct WidthsSetup {
  explicit WidthsSetup(DType dt) : m(test::tiny_ffn_model(dt, 3, 32, 128)), spec(test::tiny_spec(*m, kTokens, kSeed, gram)) {
    for (int il = 0; il < m->hp.n_layer; ++il) down.push_back(dense_down(*m, il));
    SelectOptions so;
    so.density = 0.25;
    so.centered = true;
    r = rank_neurons(*m, spec, down, so, nullptr);
  }
  WidthsSetup(const WidthsSetup&) = delete;
  std::unique_ptr<Model> m;
  std::vector<std::vector<float>> gram;
  ExpertSpec spec;
  std::vector<std::vector<float>> down;  // [n_layer][n_embd * n_ff]
  NeuronRanking r;
};

TEST(ExpertCompensate, WidthsByErrorKeepTheBudgetAndLowerTheError) {
  for (DType dt : {DType::F32, DType::Q8_0}) {
    const WidthsSetup w(dt);
    const auto& [m, gram, spec, down, r] = w;
    CompensateOptions o;
    o.method = Compensation::LeastSquares;
    const std::vector<int64_t> uniform = layer_widths(*m, spec, r, down, o);
    EXPECT_EQ(uniform, std::vector<int64_t>(3, r.k));
    o.widths = LayerWidths::ByError;
    const std::vector<int64_t> by_error = layer_widths(*m, spec, r, down, o);
    ASSERT_EQ(by_error.size(), 3u);
    EXPECT_EQ(std::accumulate(by_error.begin(), by_error.end(), int64_t(0)), 3 * r.k) << dtype_name(dt);
    auto error = [&](const std::vector<int64_t>& widths) {
      double e = 0;
      for (int il = 0; il < 3; ++il) {
        const LayerStats& gs = spec.gram_stats[il];
        e += ffn_output_energy(down[il], 32, 128, gram[il].data(), gs.tokens) -
             refit_down(down[il], 32, 128, gram[il].data(), gs.act_sum.data(), gs.tokens,
                        top_k_neurons(r.scores[il], widths[il]), o.damp)
                 .explained;
      }
      return e;
    };
    EXPECT_LE(error(by_error), error(uniform) * (1 + 1e-9)) << dtype_name(dt);
    if (dt == DType::Q8_0) {
      for (int64_t w : by_error) EXPECT_EQ(w % 32, 0) << "whole Q8_0 blocks";
    }
  }
}

// Widths by relative error do not move when one layer's FFN outputs are scaled up; widths by
// absolute error give that layer more neurons.
TEST(ExpertCompensate, RelativeWidthsIgnoreAnFfnOutputScale) {
  const WidthsSetup w(DType::F32);
  const auto& [m, gram, spec, down, r] = w;
  std::vector<std::vector<float>> scaled = down;
  for (float& v : scaled[1]) v *= 30.0f;  // layer 1's outputs 30x larger, its errors 900x
  CompensateOptions o;
  o.method = Compensation::LeastSquares;
  o.widths = LayerWidths::ByRelativeError;
  const std::vector<int64_t> relative = layer_widths(*m, spec, r, down, o);
  EXPECT_EQ(std::accumulate(relative.begin(), relative.end(), int64_t(0)), 3 * r.k);
  EXPECT_EQ(layer_widths(*m, spec, r, scaled, o), relative);
  o.widths = LayerWidths::ByError;
  const std::vector<int64_t> absolute = layer_widths(*m, spec, r, down, o);
  const std::vector<int64_t> absolute_scaled = layer_widths(*m, spec, r, scaled, o);
  EXPECT_GT(absolute_scaled[1], absolute[1]);
}

TEST(ExpertCompensate, ChecksNameWhatTheOptionsNeed) {
  auto m = test::tiny_ffn_model();
  std::vector<std::vector<float>> gram;
  const ExpertSpec spec = test::tiny_spec(*m, 50, kSeed, gram);
  ExpertSpec bare = spec;
  bare.gram = nullptr;
  CompensateOptions o;
  o.method = Compensation::LeastSquares;
  EXPECT_NO_THROW(check_compensation(spec, o, 2));
  EXPECT_THROW(check_compensation(bare, o, 2), Error);  // no Gram matrices
  EXPECT_THROW(check_compensation(spec, o, 3), Error);  // not every layer's
  o.sequential.on = true;
  EXPECT_THROW(check_compensation(spec, o, 2), Error);  // no token streams or pool
  EXPECT_THROW(start_sequential_refit(*m, spec, o), Error);
  o.sequential.on = false;
  EXPECT_EQ(start_sequential_refit(*m, spec, o), nullptr);
  o.method = Compensation::Mean;
  o.widths = LayerWidths::ByError;
  EXPECT_THROW(check_compensation(spec, o, 2), Error);  // widths by error need least squares
  o.widths = LayerWidths::Uniform;
  o.sequential.on = true;
  EXPECT_THROW(check_compensation(spec, o, 2), Error);  // and so does a sequential re-fit
}

}  // namespace
}  // namespace mf
