// The 8-row repacking shared by the prefill kernels gemm_q32_x8.cpp and gemm_kquant_x8.cpp
// (internal to ops/cpu).
#pragma once
#include <immintrin.h>

#include <cstdint>

namespace mf::ops::detail {

// 8 rows' 32 codes (u[r], element order) -> 8 "k-slices" at out (32 bytes each): slice k
// holds elements 4k..4k+3 of rows 0..7, so int32 lane r of a maddubs with 4 broadcast
// activation bytes is row r's partial dot product. An 8x8 transpose of 4-byte groups.
inline void transpose_x8(const __m256i u[8], uint8_t* out) {
  __m256i t[8], s[8];
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_epi32(u[2 * i], u[2 * i + 1]);      // rows 2i,2i+1: k0 k1 | k4 k5
    t[2 * i + 1] = _mm256_unpackhi_epi32(u[2 * i], u[2 * i + 1]);  // k2 k3 | k6 k7
  }
  for (int h = 0; h < 2; ++h) {  // rows 0-3, then 4-7
    s[4 * h + 0] = _mm256_unpacklo_epi64(t[4 * h], t[4 * h + 2]);      // k0 | k4
    s[4 * h + 1] = _mm256_unpackhi_epi64(t[4 * h], t[4 * h + 2]);      // k1 | k5
    s[4 * h + 2] = _mm256_unpacklo_epi64(t[4 * h + 1], t[4 * h + 3]);  // k2 | k6
    s[4 * h + 3] = _mm256_unpackhi_epi64(t[4 * h + 1], t[4 * h + 3]);  // k3 | k7
  }
  auto* slices = reinterpret_cast<__m256i*>(out);
  for (int k = 0; k < 4; ++k) {
    _mm256_storeu_si256(slices + k, _mm256_permute2x128_si256(s[k], s[4 + k], 0x20));
    _mm256_storeu_si256(slices + k + 4, _mm256_permute2x128_si256(s[k], s[4 + k], 0x31));
  }
}

// 4 activation bytes broadcast to every int32 lane.
inline __m256i broadcast4(const int8_t* p) {
  int32_t v;
  __builtin_memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

}  // namespace mf::ops::detail
