// AVX2 decoding of one k-quant super-block into the operands of the integer dot product
// with q8_K activations (internal to ops/cpu; used by matmul_kquant.cpp and quantize.cpp).
// Every type becomes: value[e] = d * sc[e/16] * (q[e] - off) - dmin * mn[e/16], with
//   q   unsigned codes (0..63) in element order, 32 per register, the unsigned operand of
//       maddubs (|q.x pair| <= 2*63*127 < 32767: no saturation);
//   sc  16 int8 scales, one per 16 values (q4_K/q5_K: each 32-value scale twice);
//   mn  16 int16 mins per 16 values (q2_K/q4_K/q5_K, times dmin), or off * sc for the
//       signed-code types (q3_K: off 4, q6_K: off 32), removed exactly in int32 with the
//       activations' bsums: sum sc (q - off) x = sum sc q x - sum (off sc) bsum.
#pragma once
#include <immintrin.h>

#include <cstring>

#include "core/dtype.h"
#include "core/half.h"

namespace mf::ops::detail {

struct KBlock {
  __m256i q[8];  // codes of 32-value groups 0..7
  __m128i sc;    // [16] int8
  __m256i mn;    // [16] int16
  float d, dmin;
};

template <DType T>
struct KQuant;

// Low 2 bits of 32 bytes shifted right by s (per byte).
inline __m256i bits2(__m256i v, int s) { return _mm256_and_si256(_mm256_srli_epi16(v, s), _mm256_set1_epi8(3)); }
inline __m256i load256(const uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }

// q4_K/q5_K's 12 packed bytes -> 8 six-bit scales and 8 mins, each 8 bytes in a u64.
inline void unpack_scales_k4(const uint8_t* p, uint64_t* sc, uint64_t* mn) {
  uint32_t u[3];
  std::memcpy(u, p, 12);
  const uint32_t sc_lo = u[0] & 0x3f3f3f3f, mn_lo = u[1] & 0x3f3f3f3f;
  const uint32_t sc_hi = (u[2] & 0x0f0f0f0f) | ((u[0] >> 6) & 0x03030303) << 4;
  const uint32_t mn_hi = ((u[2] >> 4) & 0x0f0f0f0f) | ((u[1] >> 6) & 0x03030303) << 4;
  *sc = sc_lo | uint64_t(sc_hi) << 32;
  *mn = mn_lo | uint64_t(mn_hi) << 32;
}

// q4_K/q5_K's scales, mins and super-block scales.
inline void decode_scales_k4(const uint8_t* scales, uint16_t d, uint16_t dmin, KBlock& k) {
  uint64_t sc, mn;
  unpack_scales_k4(scales, &sc, &mn);
  const __m128i s8 = _mm_cvtsi64_si128(int64_t(sc)), m8 = _mm_cvtsi64_si128(int64_t(mn));
  k.sc = _mm_unpacklo_epi8(s8, s8);  // each 32-value scale for both of its 16s
  k.mn = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m8, m8));
  k.d = fp16_to_f32(d), k.dmin = fp16_to_f32(dmin);
}

template <>
struct KQuant<DType::Q4_K> {
  using Block = BlockQ4_K;
  static constexpr bool kMins = true;
  static void decode(const Block& b, KBlock& k) {
    for (int j = 0; j < 4; ++j) {
      const __m256i v = load256(b.qs + 32 * j);
      k.q[2 * j] = _mm256_and_si256(v, _mm256_set1_epi8(15));
      k.q[2 * j + 1] = _mm256_and_si256(_mm256_srli_epi16(v, 4), _mm256_set1_epi8(15));
    }
    decode_scales_k4(b.scales, b.d, b.dmin, k);
  }
};

template <>
struct KQuant<DType::Q5_K> {
  using Block = BlockQ5_K;
  static constexpr bool kMins = true;
  static void decode(const Block& b, KBlock& k) {
    decode_scales_k4(b.scales, b.d, b.dmin, k);
    const __m256i h = load256(b.qh);  // bit g of byte l: the 5th bit of element 32g + l
    for (int j = 0; j < 4; ++j) {
      const __m256i v = load256(b.qs + 32 * j);
      const __m256i h0 = _mm256_and_si256(_mm256_srli_epi16(h, 2 * j), _mm256_set1_epi8(1));
      const __m256i h1 = _mm256_and_si256(_mm256_srli_epi16(h, 2 * j + 1), _mm256_set1_epi8(1));
      k.q[2 * j] = _mm256_or_si256(_mm256_and_si256(v, _mm256_set1_epi8(15)), _mm256_slli_epi16(h0, 4));
      k.q[2 * j + 1] =
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(v, 4), _mm256_set1_epi8(15)), _mm256_slli_epi16(h1, 4));
    }
  }
};

template <>
struct KQuant<DType::Q6_K> {
  using Block = BlockQ6_K;
  static constexpr bool kMins = false;
  static void decode(const Block& b, KBlock& k) {
    const __m256i m4 = _mm256_set1_epi8(15), m30 = _mm256_set1_epi8(0x30);
    for (int n = 0; n < 2; ++n) {  // 128 values: ql 64 bytes, qh 32 bytes
      const __m256i l0 = load256(b.ql + 64 * n), l1 = load256(b.ql + 64 * n + 32), h = load256(b.qh + 32 * n);
      k.q[4 * n + 0] = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_and_si256(_mm256_slli_epi16(h, 4), m30));
      k.q[4 * n + 1] = _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_and_si256(_mm256_slli_epi16(h, 2), m30));
      k.q[4 * n + 2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), _mm256_and_si256(h, m30));
      k.q[4 * n + 3] =
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4), _mm256_and_si256(_mm256_srli_epi16(h, 2), m30));
    }
    k.sc = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales));
    k.mn = _mm256_slli_epi16(_mm256_cvtepi8_epi16(k.sc), 5);  // 32 sc
    k.d = fp16_to_f32(b.d), k.dmin = 0.0f;
  }
};

template <>
struct KQuant<DType::Q3_K> {
  using Block = BlockQ3_K;
  static constexpr bool kMins = false;
  static void decode(const Block& b, KBlock& k) {
    const __m256i hm = load256(b.hmask);
    for (int n = 0; n < 2; ++n) {
      const __m256i v = load256(b.qs + 32 * n);
      for (int s = 0; s < 4; ++s) {  // code = low 2 bits + 4 * hmask bit, value = code - 4
        const __m256i hb = _mm256_and_si256(_mm256_srli_epi16(hm, 4 * n + s), _mm256_set1_epi8(1));
        k.q[4 * n + s] = _mm256_or_si256(bits2(v, 2 * s), _mm256_slli_epi16(hb, 2));
      }
    }
    uint32_t u[3];
    std::memcpy(u, b.scales, 12);
    const uint32_t w0 = (u[0] & 0x0f0f0f0f) | (u[2] & 0x03030303) << 4;
    const uint32_t w1 = (u[1] & 0x0f0f0f0f) | ((u[2] >> 2) & 0x03030303) << 4;
    const uint32_t w2 = ((u[0] >> 4) & 0x0f0f0f0f) | ((u[2] >> 4) & 0x03030303) << 4;
    const uint32_t w3 = ((u[1] >> 4) & 0x0f0f0f0f) | ((u[2] >> 6) & 0x03030303) << 4;
    k.sc = _mm_sub_epi8(_mm_setr_epi32(int(w0), int(w1), int(w2), int(w3)), _mm_set1_epi8(32));
    k.mn = _mm256_slli_epi16(_mm256_cvtepi8_epi16(k.sc), 2);  // 4 sc
    k.d = fp16_to_f32(b.d), k.dmin = 0.0f;
  }
};

template <>
struct KQuant<DType::Q2_K> {
  using Block = BlockQ2_K;
  static constexpr bool kMins = true;
  static void decode(const Block& b, KBlock& k) {
    for (int n = 0; n < 2; ++n) {
      const __m256i v = load256(b.qs + 32 * n);
      for (int s = 0; s < 4; ++s) k.q[4 * n + s] = bits2(v, 2 * s);
    }
    const __m128i s = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales));
    k.sc = _mm_and_si128(s, _mm_set1_epi8(15));
    k.mn = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(s, 4), _mm_set1_epi8(15)));
    k.d = fp16_to_f32(b.d), k.dmin = fp16_to_f32(b.dmin);
  }
};

// The int16 scale operand of group g's madd: sc[2g] for its first 16 values, sc[2g+1] after.
inline __m256i group_scales(__m128i sc, int g) {
  const __m128i ctrl = _mm_setr_epi8(char(2 * g), char(2 * g), char(2 * g), char(2 * g), char(2 * g), char(2 * g),
                                     char(2 * g), char(2 * g), char(2 * g + 1), char(2 * g + 1), char(2 * g + 1),
                                     char(2 * g + 1), char(2 * g + 1), char(2 * g + 1), char(2 * g + 1), char(2 * g + 1));
  return _mm256_cvtepi8_epi16(_mm_shuffle_epi8(sc, ctrl));
}

}  // namespace mf::ops::detail
