// k-quant-weight matmuls (q2_K..q6_K): x is quantised to q8_K once per call (256-value
// blocks, float scale, sums of each 16 codes), then each super-block contributes
//   d_w d_x sum_e sc[e/16] q[e] x[e]  -  dmin_w d_x sum_j mn[j] bsum[j]
// with both sums exact in int32 (kquant_decode.h: unsigned codes through maddubs, the
// per-16 scales through madd, signed-code offsets removed with the bsums), as GGML's
// vec_dot_qX_K_q8_K: the result equals ref::detail::vec_dot up to f32 summation order.
// Decode (1 token) streams each row with prefetch; small batches decode a super-block of 4
// rows once and reuse it for every token of the chunk; prompts of kRepackMinTokens or more
// use 8-row groups repacked per call (gemm_kquant_x8.cpp), as prefill is compute-bound.
#include <algorithm>

#include "ops/cpu/kquant_decode.h"
#include "ops/cpu/matmul_impl.h"
#include "ops/cpu/quant_acts.h"
#include "ops/cpu/simd.h"

namespace mf::ops::detail {

namespace {

// A decoded super-block with its 8 madd scale operands, reused across tokens.
struct KPanel {
  __m256i q[8], sv[8];
  __m256i mn;
  float d, dmin;
};

template <DType T>
inline void decode_panel(const uint8_t* blk, KPanel& p) {
  KBlock k;
  KQuant<T>::decode(*reinterpret_cast<const typename KQuant<T>::Block*>(blk), k);
#pragma GCC unroll 8
  for (int g = 0; g < 8; ++g) p.q[g] = k.q[g], p.sv[g] = group_scales(k.sc, g);
  p.mn = k.mn, p.d = k.d, p.dmin = k.dmin;
}

// 8 int32 lanes summing to sum sc q x (signed-code types: minus the offset term); *mins
// (kMins types): lanes summing to sum mn bsums.
template <bool kMins>
inline __m256i panel_dot(const KPanel& p, const int8_t* xq, const int16_t* bsums, __m256i* mins) {
  __m256i acc = _mm256_setzero_si256();
#pragma GCC unroll 8
  for (int g = 0; g < 8; ++g) {
    const __m256i xg = _mm256_load_si256(reinterpret_cast<const __m256i*>(xq + 32 * g));
    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(p.q[g], xg), p.sv[g]));
  }
  const __m256i c = _mm256_madd_epi16(p.mn, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bsums)));
  if constexpr (kMins) {
    *mins = c;
    return acc;
  } else {
    return _mm256_sub_epi32(acc, c);
  }
}

template <DType T>
inline void prefetch_block(const uint8_t* p, const uint8_t* end) {
  for (size_t off = 0; off < sizeof(typename KQuant<T>::Block); off += 64)
    if (p + off < end) _mm_prefetch(reinterpret_cast<const char*>(p + off), _MM_HINT_T0);
}

// One token (decode): rows [r, r1) one after the other, each a sequential stream
// prefetched kStreamPrefetchBytes ahead (as the q8_0/q4_0 stream in matmul_quant.cpp).
template <DType T>
void krows_stream(const uint8_t* wd, size_t ldw, int64_t r, int64_t r1, const QuantizedActs& xa, int64_t t, float* y) {
  constexpr int64_t kStreamPrefetchBytes = 1024;
  constexpr size_t kBlock = sizeof(typename KQuant<T>::Block);
  const int64_t nb = xa.n_blocks;
  const uint8_t* end = wd + r1 * ldw;
  const int8_t* xq = xa.qs + t * nb * kQK;  // [nb, 256]
  const float* xd = xa.d + t * nb;          // [nb]
  const int16_t* bs = xa.bsums + t * nb * 16;  // [nb, 16]
  for (; r < r1; ++r) {
    const uint8_t* row = wd + r * ldw;  // [nb] blocks
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      prefetch_block<T>(row + b * kBlock + kStreamPrefetchBytes, end);
      KPanel p;
      decode_panel<T>(row + b * kBlock, p);
      __m256i mins;
      const __m256i dot = panel_dot<KQuant<T>::kMins>(p, xq + b * kQK, bs + b * 16, &mins);
      acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_set1_ps(p.d * xd[b]), acc);
      if constexpr (KQuant<T>::kMins) acc = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(mins), _mm256_set1_ps(p.dmin * xd[b]), acc);
    }
    y[r] = simd::hsum(acc);
  }
}

// y[t, 0..NR) for t < nt (<= kTokenChunk) over NR <= 4 rows of stride ldw: each super-block
// of the 4 rows is decoded once for all tokens. As in matmul_quant.cpp's qtile_fold, two
// rounds of hadd fold the 4 rows' lanes into one vector (lanes r and r+4: halves of row r),
// so conversion and scaling happen once per 4 rows; missing rows stay zero, so a row's
// arithmetic does not depend on the tile it lands in.
template <DType T, int NR>
void ktile(const uint8_t* w, size_t ldw, const QuantizedActs& xa, int64_t t0, int64_t nt, float* y, int64_t ldy) {
  constexpr bool kMins = KQuant<T>::kMins;
  constexpr size_t kBlock = sizeof(typename KQuant<T>::Block);
  const int64_t nb = xa.n_blocks;
  __m256 acc[kTokenChunk];  // [nt] 4 rows x 2 halves
  for (int64_t t = 0; t < nt; ++t) acc[t] = _mm256_setzero_ps();
  KPanel p[4];
  for (int r = NR; r < 4; ++r) p[r] = KPanel{};
  for (int64_t b = 0; b < nb; ++b) {
#pragma GCC unroll 4
    for (int r = 0; r < NR; ++r) {
      const uint8_t* blk = w + r * ldw + b * kBlock;
      prefetch_block<T>(blk + 4 * kBlock, w + r * ldw + ldw);
      decode_panel<T>(blk, p[r]);
    }
    const __m256 dw = _mm256_setr_ps(p[0].d, p[1].d, p[2].d, p[3].d, p[0].d, p[1].d, p[2].d, p[3].d);
    const __m256 dm = _mm256_setr_ps(p[0].dmin, p[1].dmin, p[2].dmin, p[3].dmin, p[0].dmin, p[1].dmin, p[2].dmin, p[3].dmin);
    for (int64_t t = 0; t < nt; ++t) {
      const int64_t i = (t0 + t) * nb + b;
      const int8_t* xq = xa.qs + i * kQK;
      __m256i a[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256()};
#pragma GCC unroll 8
      for (int g = 0; g < 8; ++g) {
        const __m256i xg = _mm256_load_si256(reinterpret_cast<const __m256i*>(xq + 32 * g));
#pragma GCC unroll 4
        for (int r = 0; r < NR; ++r)
          a[r] = _mm256_add_epi32(a[r], _mm256_madd_epi16(_mm256_maddubs_epi16(p[r].q[g], xg), p[r].sv[g]));
      }
      const __m256i bsv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xa.bsums + i * 16));
      __m256i c[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256()};
#pragma GCC unroll 4
      for (int r = 0; r < NR; ++r) {
        c[r] = _mm256_madd_epi16(p[r].mn, bsv);
        if constexpr (!kMins) a[r] = _mm256_sub_epi32(a[r], c[r]);
      }
      const __m256 dx = _mm256_set1_ps(xa.d[i]);
      const __m256i rows = _mm256_hadd_epi32(_mm256_hadd_epi32(a[0], a[1]), _mm256_hadd_epi32(a[2], a[3]));
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(rows), _mm256_mul_ps(dw, dx), acc[t]);
      if constexpr (kMins) {
        const __m256i mins = _mm256_hadd_epi32(_mm256_hadd_epi32(c[0], c[1]), _mm256_hadd_epi32(c[2], c[3]));
        acc[t] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(mins), _mm256_mul_ps(dm, dx), acc[t]);
      }
    }
  }
  for (int64_t t = 0; t < nt; ++t) {
    alignas(16) float s[4];
    _mm_store_ps(s, _mm_add_ps(_mm256_castps256_ps128(acc[t]), _mm256_extractf128_ps(acc[t], 1)));
    for (int r = 0; r < NR; ++r) y[t * ldy + r] = s[r];
  }
}

constexpr int64_t kRepackMinTokens = 8;

// Rows [r, r1) of y[nt, ldy] for tokens [t0, t0 + nt), nt <= kTokenChunk.
template <DType T>
void krows(const uint8_t* wd, size_t ldw, int64_t r, int64_t r1, const QuantizedActs& xa, int64_t t0, int64_t nt,
           float* y, int64_t ldy) {
  if (nt == 1) return krows_stream<T>(wd, ldw, r, r1, xa, t0, y);
  if (nt >= kRepackMinTokens) {
    const int64_t n8 = (r1 - r) / 8 * 8;
    gemm_kquant_x8(T, wd + r * ldw, ldw, n8, xa, t0, nt, y + r, ldy);
    r += n8;
  }
  for (; r + 4 <= r1; r += 4) ktile<T, 4>(wd + r * ldw, ldw, xa, t0, nt, y + r, ldy);
  switch (r1 - r) {
    case 3: ktile<T, 3>(wd + r * ldw, ldw, xa, t0, nt, y + r, ldy); break;
    case 2: ktile<T, 2>(wd + r * ldw, ldw, xa, t0, nt, y + r, ldy); break;
    case 1: ktile<T, 1>(wd + r * ldw, ldw, xa, t0, nt, y + r, ldy); break;
    default: break;
  }
}

void krows_any(const TensorView& w, int64_t r0, int64_t r1, const QuantizedActs& xa, int64_t t0, int64_t nt, float* y,
               int64_t ldy) {
  const auto* wd = static_cast<const uint8_t*>(w.data);
  const size_t ldw = w.row_stride();
  switch (w.dtype) {
    case DType::Q2_K: return krows<DType::Q2_K>(wd, ldw, r0, r1, xa, t0, nt, y, ldy);
    case DType::Q3_K: return krows<DType::Q3_K>(wd, ldw, r0, r1, xa, t0, nt, y, ldy);
    case DType::Q4_K: return krows<DType::Q4_K>(wd, ldw, r0, r1, xa, t0, nt, y, ldy);
    case DType::Q5_K: return krows<DType::Q5_K>(wd, ldw, r0, r1, xa, t0, nt, y, ldy);
    case DType::Q6_K: return krows<DType::Q6_K>(wd, ldw, r0, r1, xa, t0, nt, y, ldy);
    default: return;
  }
}

}  // namespace

static_assert(kGroupMaxTokens <= kTokenChunk, "rows_kquant takes the whole batch as one chunk");
static_assert(kGroupMaxTokens < kRepackMinTokens, "rows_kquant uses the dot-product tiles");

void rows_kquant(const TensorView& w, const QuantizedActs& xa, float* y, int64_t n_tokens, int64_t r0, int64_t r1) {
  krows_any(w, r0, r1, xa, 0, n_tokens, y, w.rows());
}

void matmul_kquant(const TensorView& w, const float* x, float* y, int64_t n_tokens, ThreadPool& pool) {
  const int64_t n_out = w.rows();
  thread_local QuantizedActs caller_acts;  // bound by reference: workers read the caller's
  QuantizedActs& xa = caller_acts;
  prepare_acts(n_tokens, w.cols(), xa, /*k=*/true);
  pool.parallel_for(n_tokens, 1, [&](int, int64_t t0, int64_t t1) { quantize_acts(x, t0, t1, xa); });
  const int64_t tc = token_chunk(n_tokens);
  const int64_t grain = n_tokens >= kRepackMinTokens ? 8 : kTileRows;
  for_rows(pool, n_out, grain, int64_t(w.nbytes()) * n_tokens, [&](int, int64_t r0, int64_t r1) {
    for (int64_t t0 = 0; t0 < n_tokens; t0 += tc)
      krows_any(w, r0, r1, xa, t0, std::min(tc, n_tokens - t0), y + t0 * n_out, n_out);
  });
}

}  // namespace mf::ops::detail
