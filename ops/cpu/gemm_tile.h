// Register-tiled GEMM in dot-product form (weight rows and activation rows both
// contiguous along k) for float-like weights; the loader L turns 8 weights into f32.
// Internal to ops/cpu: shared by the f32, f16 and bf16 matmuls.
#pragma once
#include <cstdint>
#include <cstring>

#include "ops/cpu/simd.h"

namespace mf::ops::detail {

struct LoadF32 {
  using T = float;
  static __m256 load(const float* p) { return _mm256_loadu_ps(p); }
};
struct LoadF16 {
  using T = uint16_t;
  static __m256 load(const uint16_t* p) { return simd::load_f16(p); }
};
struct LoadBF16 {
  using T = uint16_t;
  static __m256 load(const uint16_t* p) { return simd::load_bf16(p); }
};

// Loads n < 8 elements, zero-filling the rest (row tails when k % 8 != 0).
template <class L>
inline __m256 load_tail(const typename L::T* p, int n) {
  typename L::T buf[8] = {};
  std::memcpy(buf, p, sizeof(buf[0]) * size_t(n));
  return L::load(buf);
}

// Tokens per register tile: 4 rows x 3 tokens = 12 accumulators, leaving 4 of the 16 ymm
// registers for the three x vectors and one w vector of each k step.
inline constexpr int kTileTokens = 3;

// y[t, 0..NR) (+)= dot(w[r], x[t]) for an NR x NT tile. w: [NR, ldw], x: [NT, ldx], y: [NT, ldy].
// PF: this tile is the first pass over its rows (they come from memory), so prefetch the
// rows two tiles ahead: the hardware prefetcher ramps up too slowly on 1-2 KB rows.
template <class L, int NR, int NT, bool PF>
inline void tile(const typename L::T* w, int64_t ldw, const float* x, int64_t ldx, float* y, int64_t ldy, int64_t k,
                 bool accumulate) {
  // A single token has only NR dependency chains; a second set per row hides FMA latency.
  constexpr int NA = NT == 1 ? 2 : 1;
  __m256 acc[NA][NR][NT];
#pragma GCC unroll 2
  for (int a = 0; a < NA; ++a)
#pragma GCC unroll 4
    for (int r = 0; r < NR; ++r)
#pragma GCC unroll 4
      for (int t = 0; t < NT; ++t) acc[a][r][t] = _mm256_setzero_ps();

  int64_t i = 0;
  for (; i + 8 * NA <= k; i += 8 * NA) {
#pragma GCC unroll 2
    for (int a = 0; a < NA; ++a) {
      __m256 xv[NT];
#pragma GCC unroll 4
      for (int t = 0; t < NT; ++t) xv[t] = _mm256_loadu_ps(x + t * ldx + i + 8 * a);
#pragma GCC unroll 4
      for (int r = 0; r < NR; ++r) {
        if constexpr (PF)
          _mm_prefetch(reinterpret_cast<const char*>(w + (8 + r) * ldw + i + 8 * a), _MM_HINT_T0);
        const __m256 wv = L::load(w + r * ldw + i + 8 * a);
#pragma GCC unroll 4
        for (int t = 0; t < NT; ++t) acc[a][r][t] = _mm256_fmadd_ps(wv, xv[t], acc[a][r][t]);
      }
    }
  }
  for (; i < k; i += 8) {  // at most one full step (NT == 1) and one zero-padded tail
    const int n = int(k - i < 8 ? k - i : 8);
    __m256 xv[NT];
#pragma GCC unroll 4
    for (int t = 0; t < NT; ++t)
      xv[t] = n == 8 ? _mm256_loadu_ps(x + t * ldx + i) : _mm256_maskload_ps(x + t * ldx + i, simd::tail_mask(n));
#pragma GCC unroll 4
    for (int r = 0; r < NR; ++r) {
      const __m256 wv = n == 8 ? L::load(w + r * ldw + i) : load_tail<L>(w + r * ldw + i, n);
#pragma GCC unroll 4
      for (int t = 0; t < NT; ++t) acc[0][r][t] = _mm256_fmadd_ps(wv, xv[t], acc[0][r][t]);
    }
  }
  if constexpr (NA == 2) {
#pragma GCC unroll 4
    for (int r = 0; r < NR; ++r) acc[0][r][0] = _mm256_add_ps(acc[0][r][0], acc[1][r][0]);
  }

  const __m256 z = _mm256_setzero_ps();
#pragma GCC unroll 4
  for (int t = 0; t < NT; ++t) {
    // One 4-wide store per token: a tile's outputs are consecutive in y.
    __m128 s = simd::hsum4(acc[0][0][t], NR > 1 ? acc[0][NR > 1 ? 1 : 0][t] : z,
                           NR > 2 ? acc[0][NR > 2 ? 2 : 0][t] : z, NR > 3 ? acc[0][NR > 3 ? 3 : 0][t] : z);
    float* yt = y + t * ldy;
    if constexpr (NR == 4) {
      if (accumulate) s = _mm_add_ps(s, _mm_loadu_ps(yt));
      _mm_storeu_ps(yt, s);
    } else {
      alignas(16) float tmp[4];
      _mm_store_ps(tmp, s);
      for (int r = 0; r < NR; ++r) yt[r] = accumulate ? yt[r] + tmp[r] : tmp[r];
    }
  }
}

// All tiles of NR rows against n_tokens tokens; the first tile prefetches.
template <class L, int NR>
inline void rows_x_tokens(const typename L::T* w, int64_t ldw, const float* x, int64_t ldx, int64_t n_tokens, float* y,
                          int64_t ldy, int64_t k, bool accumulate) {
  int64_t t = 0;
  if (n_tokens >= kTileTokens) {
    tile<L, NR, kTileTokens, true>(w, ldw, x, ldx, y, ldy, k, accumulate);
    t = kTileTokens;
  }
  for (; t + kTileTokens <= n_tokens; t += kTileTokens)
    tile<L, NR, kTileTokens, false>(w, ldw, x + t * ldx, ldx, y + t * ldy, ldy, k, accumulate);
  static_assert(kTileTokens == 3, "the tail below handles 1-2 tokens");
  const bool first = t == 0;
  if (n_tokens - t == 2) {
    if (first) tile<L, NR, 2, true>(w, ldw, x, ldx, y, ldy, k, accumulate);
    else tile<L, NR, 2, false>(w, ldw, x + t * ldx, ldx, y + t * ldy, ldy, k, accumulate);
  }
  if (n_tokens - t == 1) {
    if (first) tile<L, NR, 1, true>(w, ldw, x, ldx, y, ldy, k, accumulate);
    else tile<L, NR, 1, false>(w, ldw, x + t * ldx, ldx, y + t * ldy, ldy, k, accumulate);
  }
}

// y[t, r] (+)= dot(w[r], x[t]) for r < n_rows (any count; tiles of 4 then a tail), t < n_tokens.
template <class L>
void gemm_rows(const typename L::T* w, int64_t ldw, int64_t n_rows, const float* x, int64_t ldx, int64_t n_tokens,
               float* y, int64_t ldy, int64_t k, bool accumulate) {
  int64_t r = 0;
  for (; r + 4 <= n_rows; r += 4) rows_x_tokens<L, 4>(w + r * ldw, ldw, x, ldx, n_tokens, y + r, ldy, k, accumulate);
  const typename L::T* wr = w + r * ldw;
  switch (n_rows - r) {
    case 3: rows_x_tokens<L, 3>(wr, ldw, x, ldx, n_tokens, y + r, ldy, k, accumulate); break;
    case 2: rows_x_tokens<L, 2>(wr, ldw, x, ldx, n_tokens, y + r, ldy, k, accumulate); break;
    case 1: rows_x_tokens<L, 1>(wr, ldw, x, ldx, n_tokens, y + r, ldy, k, accumulate); break;
    default: break;
  }
}

// One token: y[r] = dot(w[r], x) for rows [0, n_rows), one row after the other, so a
// thread's weights ([n_rows, k], contiguous) are read as one sequential stream, with a
// software prefetch kStreamPrefetchBytes ahead once per cache line. (The 4-row tiles above
// read four interleaved streams, which the hardware prefetcher follows poorly.) Used for
// f16/bf16 decode; f32 keeps the tiles: on the small f32 default model, whose weights stay in
// cache, x's reuse across 4 rows was worth more (docs/benchmarks.md).
template <class L>
void rows_stream(const typename L::T* w, int64_t n_rows, const float* x, float* y, int64_t k) {
  constexpr int64_t kStreamPrefetchBytes = 1024;
  constexpr int64_t kLine = 64, kStep = 32;  // weights per step: 64 bytes (f16) or 128 (f32)
  const char* end = reinterpret_cast<const char*>(w + n_rows * k);
  for (int64_t r = 0; r < n_rows; ++r) {
    const typename L::T* wr = w + r * k;  // [k]
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    int64_t i = 0;
    for (; i + kStep <= k; i += kStep) {
#pragma GCC unroll 2
      for (int64_t line = 0; line < int64_t(kStep * sizeof(typename L::T)); line += kLine) {
        const char* pf = reinterpret_cast<const char*>(wr + i) + line + kStreamPrefetchBytes;
        if (pf < end) _mm_prefetch(pf, _MM_HINT_T0);
      }
#pragma GCC unroll 4
      for (int a = 0; a < 4; ++a)
        acc[a] = _mm256_fmadd_ps(L::load(wr + i + 8 * a), _mm256_loadu_ps(x + i + 8 * a), acc[a]);
    }
    for (; i < k; i += 8) {
      const int n = int(k - i < 8 ? k - i : 8);
      const __m256 wv = n == 8 ? L::load(wr + i) : load_tail<L>(wr + i, n);
      const __m256 xv = n == 8 ? _mm256_loadu_ps(x + i) : _mm256_maskload_ps(x + i, simd::tail_mask(n));
      acc[0] = _mm256_fmadd_ps(wv, xv, acc[0]);
    }
    y[r] = simd::hsum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
  }
}

}  // namespace mf::ops::detail
