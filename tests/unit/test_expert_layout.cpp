// Stage 3 of expert construction (moe/expert_layout.h): compact layers' bytes and views in f32
// and Q8_0, and dowp's purification, on a small random FFN stack.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "expert_stage_fixture.h"
#include "moe/expert_layout.h"
#include "test_util.h"

namespace mf {
namespace {

bool same_bytes(const void* a, const void* b, size_t n) { return std::memcmp(a, b, n) == 0; }

std::vector<uint8_t> quantized_row(DType t, const float* x, int64_t n) {
  std::vector<uint8_t> b(row_bytes(t, n));
  ops::quantize_row(t, x, b.data(), n);
  return b;
}

TEST(ExpertLayout, StartsFromTheDenseViews) {
  auto m = test::tiny_ffn_model();
  ExpertSpec spec;
  spec.name = "code/1";
  spec.domain = 2, spec.subdomain = 1;
  const Expert e = start_expert(*m, spec);
  EXPECT_EQ(e.name, "code/1");
  EXPECT_EQ(e.domain, 2);
  EXPECT_EQ(e.subdomain, 1);
  EXPECT_TRUE(e.buffers.empty() && e.neurons.empty());
  ASSERT_EQ(e.layers.size(), m->w.layers.size());
  EXPECT_EQ(e.layers[1].ffn_down.data, m->w.layers[1].ffn_down.data);
}

TEST(ExpertLayout, CopiesDenseRowsAndQuantisesWhatWasFitted) {
  for (DType dt : {DType::F32, DType::Q8_0}) {
    SCOPED_TRACE(dtype_name(dt));
    auto m = test::tiny_ffn_model(dt);
    const int64_t E = m->hp.n_embd;
    const std::vector<int32_t> kept = {1, 5, 6, 20, 33, 40, 41, 63};
    const int64_t k = int64_t(kept.size());
    std::vector<float> v = test::random_floats(size_t(E * k), 3);
    // Q8_0 rows are [n_embd]; down rows [k] need whole blocks, so the down of a Q8_0 layer
    // takes k = 32 below.
    Expert e = start_expert(*m, ExpertSpec{});
    // Layer 0: plain (dense gate/up rows), no bias.
    std::vector<int32_t> kept0 = kept;
    if (dt == DType::Q8_0) {
      kept0.clear();
      for (int32_t j = 0; j < 64; j += 2) kept0.push_back(j);
    }
    const int64_t k0 = int64_t(kept0.size());
    CompactFfn plain;
    plain.down = test::random_floats(size_t(E * k0), 4);
    lay_out_layer(m->w.layers[0], plain, kept0, 0, e);
    ASSERT_EQ(e.buffers.size(), 3u);
    const LayerWeights& l0 = e.layers[0];
    EXPECT_EQ(l0.ffn_gate.shape_str(), "[" + std::to_string(k0) + ", 32]");
    EXPECT_EQ(l0.ffn_down.shape_str(), "[32, " + std::to_string(k0) + "]");
    EXPECT_EQ(l0.ffn_gate.dtype, dt);
    EXPECT_EQ(l0.ffn_down_b.data, nullptr);
    EXPECT_EQ(l0.ffn_gate.data, e.buffers[0].data());
    for (int64_t r = 0; r < k0; ++r) {
      EXPECT_TRUE(same_bytes(l0.ffn_gate.row(r), m->w.layers[0].ffn_gate.row(kept0[r]), l0.ffn_gate.row_stride())) << r;
      EXPECT_TRUE(same_bytes(l0.ffn_up.row(r), m->w.layers[0].ffn_up.row(kept0[r]), l0.ffn_up.row_stride())) << r;
    }
    for (int64_t r = 0; r < E; ++r)
      EXPECT_EQ(quantized_row(dt, plain.down.data() + r * k0, k0),
                std::vector<uint8_t>(l0.ffn_down.row(r), l0.ffn_down.row(r) + l0.ffn_down.row_stride()))
          << r;
    // Layer 1: re-fitted gate/up rows and a bias (f32 whatever the weights).
    if (dt == DType::Q8_0) continue;  // k = 8 is no whole Q8_0 block of down
    CompactFfn fitted;
    fitted.gate = test::random_floats(size_t(k * E), 5), fitted.up = test::random_floats(size_t(k * E), 6);
    fitted.down = v, fitted.bias = test::random_floats(size_t(E), 7);
    lay_out_layer(m->w.layers[1], fitted, kept, 1, e);
    ASSERT_EQ(e.buffers.size(), 7u);
    const LayerWeights& l1 = e.layers[1];
    ASSERT_NE(l1.ffn_down_b.data, nullptr);
    EXPECT_EQ(l1.ffn_down_b.dtype, DType::F32);
    EXPECT_TRUE(same_bytes(l1.ffn_down_b.data, fitted.bias.data(), size_t(E) * 4));
    EXPECT_TRUE(same_bytes(l1.ffn_gate.data, fitted.gate.data(), size_t(k * E) * 4));
    EXPECT_TRUE(same_bytes(l1.ffn_up.data, fitted.up.data(), size_t(k * E) * 4));
    EXPECT_TRUE(same_bytes(l1.ffn_down.data, fitted.down.data(), size_t(E * k) * 4));
    ASSERT_EQ(e.neurons.size(), 2u);
    EXPECT_EQ(e.neurons[1], kept);
    EXPECT_EQ(e.layers[0].ffn_gate.data, e.buffers[0].data());  // earlier views survive later buffers
    EXPECT_EQ(e.ffn_bytes(), int64_t(e.buffers[0].size() + e.buffers[1].size() + e.buffers[2].size() + e.buffers[3].size() +
                                     e.buffers[4].size() + e.buffers[5].size() + e.buffers[6].size()));
  }
}

TEST(ExpertLayout, QuantisedRefittedRowsAreQuantisedAgain) {
  auto m = test::tiny_ffn_model(DType::Q8_0);
  const int64_t E = m->hp.n_embd, k = 32;
  std::vector<int32_t> kept(static_cast<size_t>(k));
  for (int32_t j = 0; j < k; ++j) kept[size_t(j)] = 2 * j + 1;
  CompactFfn f;
  f.gate = test::random_floats(size_t(k * E), 8), f.up = test::random_floats(size_t(k * E), 9);
  f.down = test::random_floats(size_t(E * k), 10), f.bias = test::random_floats(size_t(E), 11);
  Expert e = start_expert(*m, ExpertSpec{});
  lay_out_layer(m->w.layers[0], f, kept, 0, e);
  const LayerWeights& l = e.layers[0];
  for (int64_t r = 0; r < k; ++r) {
    EXPECT_EQ(quantized_row(DType::Q8_0, f.gate.data() + r * E, E),
              std::vector<uint8_t>(l.ffn_gate.row(r), l.ffn_gate.row(r) + l.ffn_gate.row_stride()));
    EXPECT_EQ(quantized_row(DType::Q8_0, f.up.data() + r * E, E),
              std::vector<uint8_t>(l.ffn_up.row(r), l.ffn_up.row(r) + l.ffn_up.row_stride()));
  }
  EXPECT_EQ(e.buffers.size(), 4u);
}

TEST(ExpertLayout, PurifyKeepsEachRowsTopScoresAndRescalesTheSurvivors) {
  auto m = test::tiny_ffn_model();
  const TensorView& w = m->w.layers[0].ffn_up;  // [n_ff, n_embd]
  const int64_t n_in = w.cols();
  std::vector<float> x_sq = test::random_floats(size_t(n_in), 12, 0.1f, 4.0f);
  const int64_t keep = std::llround(0.3 * double(n_in));
  for (DowpScale scale : {DowpScale::None, DowpScale::Energy}) {
    const std::vector<uint8_t> bytes = purify_matrix(w, x_sq, 0.3, scale);
    ASSERT_EQ(bytes.size(), w.nbytes());
    const float* p = reinterpret_cast<const float*>(bytes.data());
    for (int64_t r = 0; r < w.rows(); ++r) {
      const float* d = w.f32() + r * n_in;
      std::vector<double> score(static_cast<size_t>(n_in));
      double total = 0, kept = 0;
      for (int64_t j = 0; j < n_in; ++j) score[j] = std::fabs(d[j]) * std::sqrt(double(x_sq[j])), total += score[j] * score[j];
      std::vector<double> sorted = score;
      std::sort(sorted.rbegin(), sorted.rend());
      int64_t nonzero = 0;
      for (int64_t j = 0; j < n_in; ++j) {
        if (p[r * n_in + j] == 0.0f) continue;
        ++nonzero, kept += score[j] * score[j];
        EXPECT_GE(score[j], sorted[keep - 1]) << r << " " << j;
      }
      ASSERT_EQ(nonzero, keep) << r;
      const float alpha = scale == DowpScale::Energy ? float(std::sqrt(total / kept)) : 1.0f;
      for (int64_t j = 0; j < n_in; ++j) {
        if (p[r * n_in + j] == 0.0f) continue;
        ASSERT_EQ(p[r * n_in + j], d[j] * alpha) << r << " " << j;
      }
    }
  }
}

TEST(ExpertLayout, PurifiedLayersKeepTheDenseShapes) {
  auto m = test::tiny_ffn_model();
  std::vector<std::vector<float>> gram;
  const ExpertSpec spec = test::tiny_spec(*m, 50, 3, gram);
  Expert e = start_expert(*m, spec);
  LayoutOptions o;
  o.dowp = true;
  o.density = 0.5;
  purify_layers(*m, spec, o, e);
  ASSERT_EQ(e.buffers.size(), size_t(3 * m->hp.n_layer));
  EXPECT_TRUE(e.neurons.empty());
  for (int il = 0; il < m->hp.n_layer; ++il) {
    EXPECT_EQ(e.layers[il].ffn_down.shape, m->w.layers[il].ffn_down.shape);
    EXPECT_EQ(e.layers[il].ffn_down.data, e.buffers[size_t(3 * il + 2)].data());
    EXPECT_EQ(e.buffers[size_t(3 * il + 2)], purify_matrix(m->w.layers[il].ffn_down, spec.stats[il].act_sq, 0.5, o.scale));
  }
  Expert bare = start_expert(*m, ExpertSpec{});
  EXPECT_THROW(purify_layers(*m, ExpertSpec{}, o, bare), Error);  // no statistics
}

}  // namespace
}  // namespace mf
