// q8_0 / q4_0 quantisation: hand-made blocks with known codes, round-trip error bounds,
// and the fast (de)quantisers against the reference, bit for bit.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "core/half.h"
#include "ops/ops.h"
#include "test_util.h"

namespace mf {
namespace {

TEST(OpsQuant, Q8_0KnownBlock) {
  // amax 127 gives d = 1 exactly, so the codes are roundf(x): ties go away from zero.
  std::vector<float> x(32, 0.0f);
  x[0] = 127.0f, x[1] = -2.5f, x[2] = 2.5f, x[3] = 0.5f, x[4] = -0.49f, x[5] = 1.49f, x[6] = -126.6f;
  BlockQ8_0 b;
  ref::quantize_row(DType::Q8_0, x.data(), &b, 32);
  EXPECT_EQ(b.d, 0x3c00);
  const int expect[7] = {127, -3, 3, 1, 0, 1, -127};
  for (int j = 0; j < 7; ++j) EXPECT_EQ(b.qs[j], expect[j]) << j;
  for (int j = 7; j < 32; ++j) EXPECT_EQ(b.qs[j], 0) << j;
  std::vector<float> back(32);
  ref::dequantize_row(DType::Q8_0, &b, back.data(), 32);
  EXPECT_EQ(back[1], -3.0f);
  EXPECT_EQ(back[6], -127.0f);
}

TEST(OpsQuant, Q4_0KnownBlock) {
  // The signed value of largest magnitude (-8, first seen) sets d = -8 / -8 = 1;
  // codes are min(15, trunc(x + 8.5)): element j in the low nibble, j+16 in the high one.
  std::vector<float> x(32, 0.0f);
  x[0] = -8.0f, x[1] = 7.0f, x[3] = -3.2f, x[16] = 3.0f, x[17] = -8.0f, x[31] = 7.6f;
  BlockQ4_0 b;
  ref::quantize_row(DType::Q4_0, x.data(), &b, 32);
  EXPECT_EQ(b.d, 0x3c00);
  EXPECT_EQ(b.qs[0], 0 | 11 << 4);
  EXPECT_EQ(b.qs[1], 15 | 0 << 4);
  EXPECT_EQ(b.qs[2], 8 | 8 << 4);
  EXPECT_EQ(b.qs[3], 5 | 8 << 4);  // trunc(-3.2 + 8.5) = 5
  EXPECT_EQ(b.qs[15], 8 | 15 << 4);  // 7.6 + 8.5 = 16.1 clamps to 15
  std::vector<float> back(32);
  ref::dequantize_row(DType::Q4_0, &b, back.data(), 32);
  EXPECT_EQ(back[0], -8.0f);
  EXPECT_EQ(back[1], 7.0f);
  EXPECT_EQ(back[16], 3.0f);
  EXPECT_EQ(back[31], 7.0f);

  // A positive extreme gives a negative scale.
  std::vector<float> y(32, 0.0f);
  y[5] = 8.0f, y[6] = -4.0f;
  ref::quantize_row(DType::Q4_0, y.data(), &b, 32);
  EXPECT_EQ(fp16_to_f32(b.d), -1.0f);
  ref::dequantize_row(DType::Q4_0, &b, back.data(), 32);
  EXPECT_EQ(back[5], 8.0f);
  EXPECT_EQ(back[6], -4.0f);
}

TEST(OpsQuant, ZeroBlocks) {
  std::vector<float> x(64, 0.0f), back(64, 1.0f);
  BlockQ8_0 b8[2];
  BlockQ4_0 b4[2];
  ref::quantize_row(DType::Q8_0, x.data(), b8, 64);
  ref::dequantize_row(DType::Q8_0, b8, back.data(), 64);
  for (float v : back) EXPECT_EQ(v, 0.0f);
  ref::quantize_row(DType::Q4_0, x.data(), b4, 64);
  EXPECT_EQ(b4[1].qs[7], 0x88);
  ref::dequantize_row(DType::Q4_0, b4, back.data(), 64);
  for (float v : back) EXPECT_EQ(v, 0.0f);
}

// Per-element error bounds: q8_0 at most d/2 plus the fp16 rounding of d over 127 steps;
// q4_0 at most |d| (a clamped +8 code) and d/2 elsewhere, plus the same fp16 term.
TEST(OpsQuant, RoundTripErrorBounds) {
  const int64_t n = 32 * 200;
  auto x = test::random_floats(size_t(n), 7, -3.0f, 3.0f);
  for (int64_t b = 0; b < n / 32; b += 7) x[size_t(b * 32 + 3)] *= 50.0f;  // some outliers
  std::vector<BlockQ8_0> q8(size_t(n / 32));
  std::vector<BlockQ4_0> q4(size_t(n / 32));
  std::vector<float> back(static_cast<size_t>(n));
  ref::quantize_row(DType::Q8_0, x.data(), q8.data(), n);
  ref::dequantize_row(DType::Q8_0, q8.data(), back.data(), n);
  for (int64_t i = 0; i < n; ++i) {
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j) amax = std::fmax(amax, std::fabs(x[size_t(i / 32 * 32 + j)]));
    const float d = amax / 127.0f;
    ASSERT_LE(std::fabs(back[size_t(i)] - x[size_t(i)]), d * (0.5f + 127.0f * 0x1p-11f) + 1e-7f) << i;
  }
  ref::quantize_row(DType::Q4_0, x.data(), q4.data(), n);
  ref::dequantize_row(DType::Q4_0, q4.data(), back.data(), n);
  double se = 0.0, sx = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j) amax = std::fmax(amax, std::fabs(x[size_t(i / 32 * 32 + j)]));
    const float d = amax / 8.0f;
    ASSERT_LE(std::fabs(back[size_t(i)] - x[size_t(i)]), d * (1.0f + 8.0f * 0x1p-11f) + 1e-7f) << i;
    se += double(back[size_t(i)] - x[size_t(i)]) * (back[size_t(i)] - x[size_t(i)]);
    sx += double(x[size_t(i)]) * x[size_t(i)];
  }
  EXPECT_LT(std::sqrt(se / sx), 0.15);  // 4-bit codes: about 10% RMS error on these rows
}

TEST(OpsQuant, FastQuantizeQ8_0BitExact) {
  for (int64_t n : {32, 64, 576, 1536}) {
    auto x = test::random_floats(size_t(n), uint32_t(n), -2.0f, 2.0f);
    x[1] = 0.0f;
    // Exact ties of x*id in one block: amax 127 gives id = 1.
    if (n >= 64) {
      for (int j = 0; j < 32; ++j) x[size_t(32 + j)] = float(j) - 15.5f;
      x[32] = 127.0f;
    }
    std::vector<BlockQ8_0> a(size_t(n / 32)), b(size_t(n / 32));
    ref::quantize_row(DType::Q8_0, x.data(), a.data(), n);
    ops::quantize_row(DType::Q8_0, x.data(), b.data(), n);
    ASSERT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(BlockQ8_0)), 0) << n;
  }
}

TEST(OpsQuant, FastDequantizeMatchesReference) {
  const int64_t n = 32 * 37;
  const auto x = test::random_floats(size_t(n), 11, -4.0f, 4.0f);
  for (DType t : {DType::F32, DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0}) {
    std::vector<uint8_t> q(row_bytes(t, n));
    ref::quantize_row(t, x.data(), q.data(), n);
    std::vector<float> a(static_cast<size_t>(n)), b(static_cast<size_t>(n));
    ref::dequantize_row(t, q.data(), a.data(), n);
    ops::dequantize_row(t, q.data(), b.data(), n);
    ASSERT_EQ(std::memcmp(a.data(), b.data(), size_t(n) * 4), 0) << dtype_name(t);
  }
  // Plain types with a tail that is not a multiple of 8.
  for (DType t : {DType::F16, DType::BF16}) {
    std::vector<uint16_t> q(13);
    ref::quantize_row(t, x.data(), q.data(), 13);
    std::vector<float> a(13), b(13);
    ref::dequantize_row(t, q.data(), a.data(), 13);
    ops::dequantize_row(t, q.data(), b.data(), 13);
    ASSERT_EQ(std::memcmp(a.data(), b.data(), 13 * 4), 0) << dtype_name(t);
  }
}

}  // namespace
}  // namespace mf
