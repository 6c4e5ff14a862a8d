// The reference k-quant quantisers (q4_K, q5_K, q6_K) and llama.cpp's type mixes. Byte equality
// with llama-quantize is checked in tests/golden/test_quantize_golden.cpp.
#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "model/quant_types.h"
#include "ops/ops.h"
#include "test_util.h"

namespace mf {
namespace {

// Relative RMS error of quantise -> dequantise on Gaussian-like data, per type. The bounds
// are a few times what each type's bits allow (q4_K ~0.1, q5_K ~0.05, q6_K ~0.025).
TEST(QuantizeKQuants, RoundTripError) {
  const int64_t n = 256 * 16;
  auto x = test::random_floats(size_t(n), 7, -1.0f, 1.0f);
  for (size_t i = 0; i < x.size(); i += 37) x[i] *= 6.0f;  // outliers, as real weights have
  for (auto [t, bound] : {std::pair{DType::Q4_K, 0.12}, {DType::Q5_K, 0.06}, {DType::Q6_K, 0.03}}) {
    std::vector<uint8_t> q(row_bytes(t, n));
    std::vector<float> back(static_cast<size_t>(n));
    ref::quantize_row(t, x.data(), q.data(), n);
    ref::dequantize_row(t, q.data(), back.data(), n);
    double err = 0, ref = 0;
    for (int64_t i = 0; i < n; ++i) err += (back[i] - x[i]) * (back[i] - x[i]), ref += x[i] * x[i];
    EXPECT_LT(std::sqrt(err / ref), bound) << dtype_name(t);
    EXPECT_GT(std::sqrt(err / ref), bound / 20) << dtype_name(t) << ": suspiciously exact";
  }
}

TEST(QuantizeKQuants, ZeroAndConstantBlocks) {
  std::vector<float> zero(256, 0.0f), constant(256, 0.25f), back(256);
  for (DType t : {DType::Q4_K, DType::Q5_K, DType::Q6_K}) {
    std::vector<uint8_t> q(row_bytes(t, 256));
    ref::quantize_row(t, zero.data(), q.data(), 256);
    ref::dequantize_row(t, q.data(), back.data(), 256);
    for (float v : back) EXPECT_EQ(v, 0.0f) << dtype_name(t);
    ref::quantize_row(t, constant.data(), q.data(), 256);
    ref::dequantize_row(t, q.data(), back.data(), 256);
    for (float v : back) EXPECT_NEAR(v, 0.25f, 0.25f * 0.02f) << dtype_name(t);
  }
}

// llama.cpp's mixes on a model shape: 18 layers, 640 wide (not a multiple of 256), n_ff 2048.
TEST(QuantTypes, Q4KMMixFollowsLlamaCpp) {
  Model m;
  m.hp.n_layer = 18;
  m.hp.tied_embeddings = true;
  TypePolicy p = preset_types("q4_K_M", m);
  TensorView wide = make_view(DType::F16, {640, 2048}, nullptr);   // ffn_down: 2048 columns
  TensorView narrow = make_view(DType::F16, {2048, 640}, nullptr);  // ffn_up: 640 columns
  auto type_of = [&](TensorRole role, int layer, const TensorView& v) { return p(TensorToWrite{"", role, layer, &v}); };
  // use_more_bits over 18 layers: 0, 1, 4, 7, 10, 13, 15, 16, 17.
  int q6 = 0;
  for (int il = 0; il < 18; ++il) q6 += type_of(TensorRole::FfnDown, il, wide) == DType::Q6_K;
  EXPECT_EQ(q6, 9);
  EXPECT_EQ(type_of(TensorRole::FfnDown, 2, wide), DType::Q4_K);
  EXPECT_EQ(type_of(TensorRole::FfnDown, 4, wide), DType::Q6_K);
  EXPECT_EQ(type_of(TensorRole::FfnUp, 4, narrow), DType::Q5_0);  // q4_K's fallback
  EXPECT_EQ(type_of(TensorRole::Wv, 0, narrow), DType::Q8_0);     // q6_K's fallback
  EXPECT_EQ(type_of(TensorRole::TokEmbd, -1, narrow), DType::Q8_0);  // tied output, 640 wide
  EXPECT_EQ(type_of(TensorRole::TokEmbd, -1, wide), DType::Q6_K);
  EXPECT_EQ(preset_types("q5_K_M", m)(TensorToWrite{"", TensorRole::FfnUp, 2, &narrow}), DType::Q5_1);
  EXPECT_EQ(preset_types("f16", m)(TensorToWrite{"", TensorRole::TokEmbd, -1, &wide}), DType::F16);
  EXPECT_THROW(preset_types("q3_K_S", m), Error);
}

}  // namespace
}  // namespace mf
