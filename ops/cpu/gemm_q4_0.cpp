// q4_0 prefill kernel on 8-row groups repacked per call into an L1-resident panel.
// Panel block = 8 ymm "k-slices" (slice k holds elements 4k..4k+3 of each of the 8 rows,
// codes 0..15) + the 8 row scales. For each token, x's 4 bytes 4k..4k+3 are broadcast and
// multiplied with slice k by _mm256_maddubs_epi16, so every int32 lane is one row: no
// horizontal sums, one scale multiply per (8 rows, token, block), and the 8 slices'
// int16 partial sums add without overflow (8 * 2 * 15 * 127 = 30480 < 32767) before one
// _mm256_madd_epi16. About 20 vector ops per 256 multiply-adds, ~2x the dot-product tiles.
#include <immintrin.h>

#include <cstring>
#include <vector>

#include "core/dtype.h"
#include "ops/cpu/quant_acts.h"

namespace mf::ops::detail {

namespace {

constexpr int kSliceBytes = 32;
constexpr int kPanelBlockBytes = 8 * kSliceBytes + 8 * 4;  // 8 k-slices + 8 f32 scales
constexpr int kX8Tokens = 5;                                // tokens per register tile

// Repacks block column b of 8 rows into the panel: an 8x8 transpose of 4-byte groups.
inline void repack_block(const uint8_t* w, size_t ldw, int64_t b, uint8_t* out) {
  __m256i u[8];
  alignas(16) uint16_t d[8];
  for (int r = 0; r < 8; ++r) {
    const auto& blk = reinterpret_cast<const BlockQ4_0*>(w + r * ldw)[b];
    // Low nibbles (elements 0-15) in the lower half, high nibbles (16-31) in the upper half.
    const __m256i both = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk.qs)));
    u[r] = _mm256_and_si256(_mm256_srlv_epi64(both, _mm256_setr_epi64x(0, 0, 4, 4)), _mm256_set1_epi8(15));
    d[r] = blk.d;
  }
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
  _mm256_storeu_ps(reinterpret_cast<float*>(out + 8 * kSliceBytes),
                   _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(d))));
}

inline __m256i broadcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

// y[t, 0..8) for NT tokens from a repacked panel of nb blocks.
template <int NT>
inline void tile_x8(const uint8_t* panel, const QuantizedActs& xa, int64_t t0, float* y, int64_t ldy) {
  const int64_t nb = xa.n_blocks;
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc[NT];
#pragma GCC unroll 8
  for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* pb = panel + b * kPanelBlockBytes;
    const int8_t* xb[NT];
#pragma GCC unroll 8
    for (int t = 0; t < NT; ++t) xb[t] = xa.qs + ((t0 + t) * nb + b) * kQBlock;
    __m256i a16[NT];
#pragma GCC unroll 8
    for (int k = 0; k < 8; ++k) {
      const __m256i wk = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(pb + k * kSliceBytes));
#pragma GCC unroll 8
      for (int t = 0; t < NT; ++t) {
        const __m256i p = _mm256_maddubs_epi16(wk, broadcast4(xb[t] + 4 * k));
        a16[t] = k == 0 ? p : _mm256_add_epi16(a16[t], p);
      }
    }
    const __m256 dw = _mm256_loadu_ps(reinterpret_cast<const float*>(pb + 8 * kSliceBytes));
#pragma GCC unroll 8
    for (int t = 0; t < NT; ++t) {
      const int64_t i = (t0 + t) * nb + b;
      // Each lane is a whole row's block dot product: remove the full 8 sum(x) offset.
      const __m256i dot = _mm256_sub_epi32(_mm256_madd_epi16(a16[t], ones), _mm256_set1_epi32(8 * xa.sum[i]));
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_mul_ps(dw, _mm256_broadcast_ss(xa.d + i)), acc[t]);
    }
  }
#pragma GCC unroll 8
  for (int t = 0; t < NT; ++t) _mm256_storeu_ps(y + t * ldy, acc[t]);
}

// The last n < kX8Tokens tokens.
template <int N>
inline void tail_x8(int64_t n, const uint8_t* panel, const QuantizedActs& xa, int64_t t0, float* y, int64_t ldy) {
  if constexpr (N > 0) {
    if (n == N) return tile_x8<N>(panel, xa, t0, y, ldy);
    tail_x8<N - 1>(n, panel, xa, t0, y, ldy);
  }
}

}  // namespace

void gemm_q4_0_x8(const uint8_t* w, size_t ldw, int64_t n_rows, const QuantizedActs& xa, int64_t t0, int64_t nt,
                  float* y, int64_t ldy) {
  const int64_t nb = xa.n_blocks;
  thread_local std::vector<uint8_t> panel;  // [nb, kPanelBlockBytes]
  panel.resize(size_t(nb * kPanelBlockBytes));
  for (int64_t r = 0; r < n_rows; r += 8) {
    for (int64_t b = 0; b < nb; ++b) repack_block(w + r * ldw, ldw, b, panel.data() + b * kPanelBlockBytes);
    float* yr = y + r;  // [nt, ldy]
    int64_t t = 0;
    for (; t + kX8Tokens <= nt; t += kX8Tokens) tile_x8<kX8Tokens>(panel.data(), xa, t0 + t, yr + t * ldy, ldy);
    tail_x8<kX8Tokens - 1>(nt - t, panel.data(), xa, t0 + t, yr + t * ldy, ldy);
  }
}

}  // namespace mf::ops::detail
