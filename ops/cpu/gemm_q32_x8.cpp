// Prefill kernel of the 4/5-bit 32-value types (q4_0, q4_1, q5_0, q5_1) on 8-row groups
// repacked per call into an L1-resident panel. Panel block = 8 ymm "k-slices" (slice k holds
// elements 4k..4k+3 of each of the 8 rows, unsigned codes) + the 8 row scales (+ 8 minimums).
// For each token, x's 4 bytes 4k..4k+3 are broadcast and multiplied with slice k by
// _mm256_maddubs_epi16, so every int32 lane is one row: no horizontal sums, one scale
// multiply per (8 rows, token, block). The slices' int16 partial sums add without overflow
// before _mm256_madd_epi16: 8 slices of 4-bit codes (8 * 2 * 15 * 127 = 30480 < 32767), 4 at
// a time for 5-bit ones (4 * 2 * 31 * 127 = 31496). Offsets (q4_0: 8, q5_0: 16) are removed
// in int32 with sum(x); minimums (q4_1, q5_1) add m_w s_x, as GGML's vec_dot_q4_1_q8_1.
// About 20 vector ops per 256 multiply-adds, ~2x the dot-product tiles.
#include <immintrin.h>

#include <cstring>
#include <vector>

#include "ops/cpu/q32_weights.h"
#include "ops/cpu/quant_acts.h"
#include "ops/cpu/repack_x8.h"

namespace mf::ops::detail {

namespace {

constexpr int kSliceBytes = 32;
constexpr int kPanelBlockBytes = 8 * kSliceBytes + 16 * 4;  // 8 k-slices + 8 f32 scales + 8 f32 minimums

// Repacks block column b of 8 rows into the panel.
template <class W>
inline void repack_block(const uint8_t* w, size_t ldw, int64_t b, uint8_t* out) {
  __m256i u[8];
  alignas(16) uint16_t d[8], m[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int r = 0; r < 8; ++r) {
    const auto& blk = reinterpret_cast<const typename W::Block*>(w + r * ldw)[b];
    u[r] = W::load(blk);
    d[r] = blk.d;
    if constexpr (W::kMin) m[r] = blk.m;
  }
  transpose_x8(u, out);
  auto* scales = reinterpret_cast<float*>(out + 8 * kSliceBytes);
  _mm256_storeu_ps(scales, _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(d))));
  _mm256_storeu_ps(scales + 8, _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(m))));
}

// Tokens per register tile: 5-bit codes keep two partial sums per token.
template <class W>
constexpr int kX8Tokens = W::k5Bit ? 4 : 5;

// y[t, 0..8) for NT tokens from a repacked panel of nb blocks.
template <class W, int NT>
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
    __m256i a16[NT], a32[NT];
#pragma GCC unroll 8
    for (int k = 0; k < 8; ++k) {
      const __m256i wk = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(pb + k * kSliceBytes));
#pragma GCC unroll 8
      for (int t = 0; t < NT; ++t) {
        const __m256i p = _mm256_maddubs_epi16(wk, broadcast4(xb[t] + 4 * k));
        a16[t] = (k == 0 || (W::k5Bit && k == 4)) ? p : _mm256_add_epi16(a16[t], p);
        if (W::k5Bit && k == 3) a32[t] = _mm256_madd_epi16(a16[t], ones);
      }
    }
    const __m256 dw = _mm256_loadu_ps(reinterpret_cast<const float*>(pb + 8 * kSliceBytes));
#pragma GCC unroll 8
    for (int t = 0; t < NT; ++t) {
      const int64_t i = (t0 + t) * nb + b;
      __m256i dot = _mm256_madd_epi16(a16[t], ones);
      if constexpr (W::k5Bit) dot = _mm256_add_epi32(dot, a32[t]);
      // Each lane is a whole row's block dot product: remove the full offset sum(x).
      if constexpr (W::kOffset != 0) dot = _mm256_sub_epi32(dot, _mm256_set1_epi32(W::kOffset * xa.sum[i]));
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_mul_ps(dw, _mm256_broadcast_ss(xa.d + i)), acc[t]);
      if constexpr (W::kMin)
        acc[t] = _mm256_fmadd_ps(_mm256_loadu_ps(reinterpret_cast<const float*>(pb + 8 * kSliceBytes) + 8),
                                 _mm256_broadcast_ss(xa.s + i), acc[t]);
    }
  }
#pragma GCC unroll 8
  for (int t = 0; t < NT; ++t) _mm256_storeu_ps(y + t * ldy, acc[t]);
}

// The last n < kX8Tokens tokens.
template <class W, int N>
inline void tail_x8(int64_t n, const uint8_t* panel, const QuantizedActs& xa, int64_t t0, float* y, int64_t ldy) {
  if constexpr (N > 0) {
    if (n == N) return tile_x8<W, N>(panel, xa, t0, y, ldy);
    tail_x8<W, N - 1>(n, panel, xa, t0, y, ldy);
  }
}

template <class W>
void gemm_x8(const uint8_t* w, size_t ldw, int64_t n_rows, const QuantizedActs& xa, int64_t t0, int64_t nt, float* y,
             int64_t ldy) {
  constexpr int NT = kX8Tokens<W>;
  const int64_t nb = xa.n_blocks;
  thread_local std::vector<uint8_t> panel;  // [nb, kPanelBlockBytes]
  panel.resize(size_t(nb * kPanelBlockBytes));
  for (int64_t r = 0; r < n_rows; r += 8) {
    for (int64_t b = 0; b < nb; ++b) repack_block<W>(w + r * ldw, ldw, b, panel.data() + b * kPanelBlockBytes);
    float* yr = y + r;  // [nt, ldy]
    int64_t t = 0;
    for (; t + NT <= nt; t += NT) tile_x8<W, NT>(panel.data(), xa, t0 + t, yr + t * ldy, ldy);
    tail_x8<W, NT - 1>(nt - t, panel.data(), xa, t0 + t, yr + t * ldy, ldy);
  }
}

}  // namespace

void gemm_q32_x8(DType t, const uint8_t* w, size_t ldw, int64_t n_rows, const QuantizedActs& xa, int64_t t0,
                 int64_t nt, float* y, int64_t ldy) {
  switch (t) {
    case DType::Q4_0: return gemm_x8<WeightsQ4_0>(w, ldw, n_rows, xa, t0, nt, y, ldy);
    case DType::Q4_1: return gemm_x8<WeightsQ4_1>(w, ldw, n_rows, xa, t0, nt, y, ldy);
    case DType::Q5_0: return gemm_x8<WeightsQ5_0>(w, ldw, n_rows, xa, t0, nt, y, ldy);
    case DType::Q5_1: return gemm_x8<WeightsQ5_1>(w, ldw, n_rows, xa, t0, nt, y, ldy);
    default: return;
  }
}

}  // namespace mf::ops::detail
