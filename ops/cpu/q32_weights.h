// The 32-value block weight types as operands of the integer dot products (internal to
// ops/cpu; matmul_quant.cpp, gemm_q32_x8.cpp): 32 codes per block in element order, and how
// a code becomes a value: d (q - kOffset) (+ m with kMin).
#pragma once
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "core/dtype.h"

namespace mf::ops::detail {

struct WeightsQ8_0 {
  using Block = BlockQ8_0;
  static constexpr bool kUnsigned = false;
  static constexpr int kOffset = 0;     // subtracted from the codes (q4_0: 8, q5_0: 16)
  static constexpr bool kMin = false;   // value = d q + m (q4_1, q5_1)
  static constexpr bool k5Bit = false;
  static __m256i load(const Block& b) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs)); }
};

struct WeightsQ4_0 {
  using Block = BlockQ4_0;
  static constexpr bool kUnsigned = true;
  static constexpr int kOffset = 8;
  static constexpr bool kMin = false;
  static constexpr bool k5Bit = false;
  // 16 bytes of nibble pairs -> 32 codes 0..15 in element order (low nibbles first).
  // The 16 bytes are loaded into both halves; shifting only the upper half right by 4 then
  // masking leaves low nibbles below and high nibbles above (2 ALU ops).
  static __m256i load(const Block& b) {
    const __m256i both = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.qs)));
    return _mm256_and_si256(_mm256_srlv_epi64(both, _mm256_setr_epi64x(0, 0, 4, 4)), _mm256_set1_epi8(15));
  }
};

// q5's 32 high bits -> 16 in byte i where bit i is set (byte i takes byte i/8 of qh, then
// its bit i%8 is tested).
inline __m256i high_bits16(const uint8_t* qh) {
  uint32_t h;
  std::memcpy(&h, qh, 4);
  const __m256i spread = _mm256_shuffle_epi8(_mm256_set1_epi32(int(h)),
                                             _mm256_setr_epi64x(0, 0x0101010101010101, 0x0202020202020202, 0x0303030303030303));
  const __m256i bit = _mm256_set1_epi64x(int64_t(0x8040201008040201));
  return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit), _mm256_set1_epi8(16));
}

inline __m256i nibbles(const uint8_t* qs) {
  const __m256i both = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(qs)));
  return _mm256_and_si256(_mm256_srlv_epi64(both, _mm256_setr_epi64x(0, 0, 4, 4)), _mm256_set1_epi8(15));
}

struct WeightsQ4_1 {
  using Block = BlockQ4_1;
  static constexpr bool kUnsigned = true;
  static constexpr int kOffset = 0;
  static constexpr bool kMin = true;
  static constexpr bool k5Bit = false;
  static __m256i load(const Block& b) { return nibbles(b.qs); }
};

struct WeightsQ5_0 {
  using Block = BlockQ5_0;
  static constexpr bool kUnsigned = true;
  static constexpr int kOffset = 16;
  static constexpr bool kMin = false;
  static constexpr bool k5Bit = true;
  static __m256i load(const Block& b) { return _mm256_or_si256(nibbles(b.qs), high_bits16(b.qh)); }
};

struct WeightsQ5_1 {
  using Block = BlockQ5_1;
  static constexpr bool kUnsigned = true;
  static constexpr int kOffset = 0;
  static constexpr bool kMin = true;
  static constexpr bool k5Bit = true;
  static __m256i load(const Block& b) { return _mm256_or_si256(nibbles(b.qs), high_bits16(b.qh)); }
};

}  // namespace mf::ops::detail
