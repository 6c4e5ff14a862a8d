// fp16/bf16 scalar conversions (core/half.h) against the F16C hardware converters and
// hand-checked edge cases: subnormals, infinities, NaN, rounding ties.
#include <gtest/gtest.h>
#include <immintrin.h>

#include <cmath>
#include <cstring>
#include <random>

#include "core/half.h"

namespace mf {
namespace {

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

TEST(OpsHalf, Fp16ToF32ExhaustiveMatchesF16C) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float ours = fp16_to_f32(uint16_t(h));
    const float hw = _cvtsh_ss(uint16_t(h));
    if (std::isnan(hw)) {
      ASSERT_TRUE(std::isnan(ours)) << "h=" << h;
      ASSERT_EQ(bits(ours) >> 31, bits(hw) >> 31) << "NaN sign, h=" << h;
    } else {
      ASSERT_EQ(bits(ours), bits(hw)) << "h=" << h;
    }
  }
}

// Compares one float's conversion with F16C (round to nearest even).
void check_f32_to_fp16(float f) {
  const uint16_t ours = f32_to_fp16(f);
  const uint16_t hw = _cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT);
  if (std::isnan(f)) {
    ASSERT_TRUE(std::isnan(fp16_to_f32(ours))) << "f bits=" << bits(f);
    ASSERT_EQ(ours & 0x8000, hw & 0x8000);
  } else {
    ASSERT_EQ(ours, hw) << "f=" << f << " bits=0x" << std::hex << bits(f);
  }
}

TEST(OpsHalf, F32ToFp16RandomBitsMatchF16C) {
  std::mt19937 rng(1);
  for (int i = 0; i < 2'000'000; ++i) check_f32_to_fp16(from_bits(rng()));
}

TEST(OpsHalf, F32ToFp16NearHalfRangeMatchesF16C) {
  // Exponents around the fp16 range: subnormal, normal and overflow boundaries, with random
  // mantissas (including exact ties, whose low 13 bits are 0x1000).
  std::mt19937 rng(2);
  for (int i = 0; i < 2'000'000; ++i) {
    const uint32_t exp = 100 + rng() % 45;  // 2^-27 .. 2^17
    uint32_t man = rng() & 0x7fffff;
    if (i % 4 == 0) man = (man & ~0x1fffu) | 0x1000;  // a tie at normal fp16 precision
    check_f32_to_fp16(from_bits((rng() & 0x80000000u) | exp << 23 | man));
  }
}

TEST(OpsHalf, Fp16EdgeCases) {
  EXPECT_EQ(f32_to_fp16(0.0f), 0x0000);
  EXPECT_EQ(f32_to_fp16(-0.0f), 0x8000);
  EXPECT_EQ(f32_to_fp16(1.0f), 0x3c00);
  EXPECT_EQ(f32_to_fp16(65504.0f), 0x7bff);                  // largest finite
  EXPECT_EQ(f32_to_fp16(65519.0f), 0x7bff);                  // just below the tie
  EXPECT_EQ(f32_to_fp16(65520.0f), 0x7c00);                  // tie rounds to even: inf
  EXPECT_EQ(f32_to_fp16(INFINITY), 0x7c00);
  EXPECT_EQ(f32_to_fp16(-INFINITY), 0xfc00);
  EXPECT_EQ(f32_to_fp16(1.0f + 0x1p-11f), 0x3c00);           // tie -> even (down)
  EXPECT_EQ(f32_to_fp16(1.0f + 3 * 0x1p-11f), 0x3c02);       // tie -> even (up)
  EXPECT_EQ(f32_to_fp16(0x1p-24f), 0x0001);                  // smallest subnormal
  EXPECT_EQ(f32_to_fp16(0x1p-25f), 0x0000);                  // tie -> even zero
  EXPECT_EQ(f32_to_fp16(0x1.8p-25f), 0x0001);                // above the tie
  EXPECT_EQ(f32_to_fp16(0x1p-14f), 0x0400);                  // smallest normal
  EXPECT_EQ(f32_to_fp16(0x1.ff8p-15f), 0x03ff);              // largest subnormal
  EXPECT_EQ(f32_to_fp16(0x1.ffcp-15f), 0x0400);              // tie -> even: up into the normals
  EXPECT_TRUE(std::isnan(fp16_to_f32(f32_to_fp16(NAN))));
  EXPECT_EQ(fp16_to_f32(0x0001), 0x1p-24f);
  EXPECT_EQ(fp16_to_f32(0x03ff), 0x3ffp-24f);
  EXPECT_EQ(fp16_to_f32(0xfc00), -INFINITY);
  EXPECT_TRUE(std::isnan(fp16_to_f32(0x7c01)));
}

// bf16 nearest-even rounding computed independently: pick the closer of the two bf16
// neighbours in double arithmetic.
uint16_t bf16_nearest(float f) {
  const uint32_t u = bits(f);
  const uint16_t lo = uint16_t(u >> 16), hi = uint16_t(lo + 1);
  const double d = f, a = bf16_to_f32(lo), b = bf16_to_f32(hi);
  if (std::isinf(b) || (u & 0xffff) == 0) return (u & 0xffff) > 0x8000 || ((u & 0xffff) == 0x8000 && (lo & 1)) ? hi : lo;
  const double da = std::fabs(d - a), db = std::fabs(b - d);
  if (da < db) return lo;
  if (db < da) return hi;
  return (lo & 1) ? hi : lo;
}

TEST(OpsHalf, Bf16RoundTripAndRounding) {
  std::mt19937 rng(3);
  for (int i = 0; i < 2'000'000; ++i) {
    const float f = from_bits(rng());
    if (std::isnan(f)) {
      ASSERT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(f))));
      continue;
    }
    ASSERT_EQ(f32_to_bf16(f), bf16_nearest(f)) << "bits=0x" << std::hex << bits(f);
  }
  for (uint32_t h = 0; h < 65536; ++h) {  // every bf16 value survives a round trip
    const float f = bf16_to_f32(uint16_t(h));
    if (!std::isnan(f)) {
      ASSERT_EQ(f32_to_bf16(f), h);
    }
  }
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(f32_to_bf16(from_bits(0x3f808000)), 0x3f80);  // tie -> even (down)
  EXPECT_EQ(f32_to_bf16(from_bits(0x3f818000)), 0x3f82);  // tie -> even (up)
  EXPECT_EQ(f32_to_bf16(from_bits(0x7f7fffff)), 0x7f80);  // rounds up to inf
  EXPECT_EQ(f32_to_bf16(-INFINITY), 0xff80);
  EXPECT_EQ(f32_to_bf16(from_bits(0x00000001)), 0x0000);  // tiny subnormal
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(from_bits(0x7f800001)))));  // sNaN stays NaN
}

}  // namespace
}  // namespace mf
