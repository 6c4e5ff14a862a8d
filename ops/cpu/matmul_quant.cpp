// Matmuls of the 32-value block types (q8_0, q4_0, q4_1, q5_0, q5_1): x is quantised to
// q8_0 once per call (shared by all threads; q8_1's s = d sum(x) alongside), then each
// 32-block contributes d_w * d_x * (integer dot product) (+ m_w * s_x for q4_1/q5_1, as
// GGML's vec_dot_q4_1_q8_1).
// Integer dots use _mm256_maddubs_epi16 (unsigned x signed bytes, adjacent pairs summed
// to int16) then _mm256_madd_epi16 with ones (pairs of int16 summed to int32).
//  * q8_0: |w| is the unsigned operand and x takes w's sign (sign trick); each pair sum is
//    <= 2*127*127 < 32767, so no saturation.
//  * q4_0/q5_0: the raw codes 0..15 / 0..31 are the unsigned operand and x is used as is;
//    the offset is removed exactly in int32: (q - 8).x = q.x - 8 sum(x). q4_1/q5_1 codes
//    have no offset.
// Decode and short prompts use dot-product tiles straight on the weight rows; longer q4_0
// prompts of the 4/5-bit types use 8-row groups repacked per call (gemm_q32_x8.cpp), as
// prefill is compute-bound.
#include <algorithm>
#include <cstring>

#include "core/half.h"
#include "ops/cpu/matmul_impl.h"
#include "ops/cpu/q32_weights.h"
#include "ops/cpu/quant_acts.h"
#include "ops/cpu/simd.h"

namespace mf::ops::detail {

namespace {

// Tokens per register tile.
constexpr int kQTileTokens = 4;
// Decode prefetch distance in rows. Rows are short streams (576 values = 612 bytes of q8_0)
// that the hardware prefetcher barely ramps up on; fetching the next tiles' rows explicitly
// took q8_0 decode from 5 to 18 GB/s per core. Prefetching past the matrix never faults.
constexpr int kPrefetchRows = 8;
// q4_0/q4_1/q5_0/q5_1 prompts of at least this many tokens use the repacked 8-row kernel.
constexpr int64_t kRepackMinTokens = 8;

// y[t, 0..NR) = sum over blocks of d_w d_x dot(w, x), an NR x NT tile (NR <= 4), w: NR rows
// of stride ldw. Instead of scaling each row's 8-lane block dot separately, two rounds of
// hadd fold the 4 rows into one vector (lanes r and r+4 hold halves of row r), so the
// int->float conversion, scale multiply and FMA happen once per 4 rows and token, with the 4
// fp16 row scales converted together: about 30% fewer vector ops per block than a tile that
// scales each row, and NT accumulators instead of 4 x NT, so the weight blocks stay in
// registers across tokens (a 4-token batch ran 1.2-1.4x faster than with 4 x 4 accumulators).
// PF: the first tile over these rows, which streams them from memory: prefetch ahead
// (without it a 4-token batch cost 3.6x a single token's matmul). Fewer than 4 rows (a tail) leave the missing rows zero, so a row's
// arithmetic, and result, is the same whichever tile it lands in.
template <class W, int NR, int NT, bool PF>
inline void qtile_fold(const uint8_t* w, size_t ldw, const QuantizedActs& xa, int64_t t0, float* y, int64_t ldy) {
  const int64_t nb = xa.n_blocks;
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc[NT];
#pragma GCC unroll 4
  for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    __m256i wq[4], wu[4];  // codes, and the unsigned operand of maddubs (|w| for q8_0)
    uint16_t d16[4] = {0, 0, 0, 0}, m16[4] = {0, 0, 0, 0};
#pragma GCC unroll 4
    for (int r = 0; r < NR; ++r) {
      if constexpr (PF)
        _mm_prefetch(reinterpret_cast<const char*>(w + (kPrefetchRows + r) * ldw + b * sizeof(typename W::Block)),
                     _MM_HINT_T0);
      const auto& blk = reinterpret_cast<const typename W::Block*>(w + r * ldw)[b];
      wq[r] = W::load(blk);
      wu[r] = W::kUnsigned ? wq[r] : _mm256_sign_epi8(wq[r], wq[r]);
      d16[r] = blk.d;
      if constexpr (W::kMin) m16[r] = blk.m;
    }
    const __m128 dw = _mm_cvtph_ps(_mm_setr_epi16(short(d16[0]), short(d16[1]), short(d16[2]), short(d16[3]), 0, 0, 0, 0));
    const __m256 dw2 = _mm256_set_m128(dw, dw);
    // q4_1/q5_1: the rows' minimums in lanes 0..3 only (each row's m s_x is added once).
    __m256 mw = _mm256_setzero_ps();
    if constexpr (W::kMin)
      mw = _mm256_zextps128_ps256(
          _mm_cvtph_ps(_mm_setr_epi16(short(m16[0]), short(m16[1]), short(m16[2]), short(m16[3]), 0, 0, 0, 0)));
#pragma GCC unroll 4
    for (int t = 0; t < NT; ++t) {
      const int64_t i = (t0 + t) * nb + b;
      const __m256i xq = _mm256_load_si256(reinterpret_cast<const __m256i*>(xa.qs + i * kQBlock));
      __m256i dot[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256()};
#pragma GCC unroll 4
      for (int r = 0; r < NR; ++r) {
        const __m256i xs = W::kUnsigned ? xq : _mm256_sign_epi8(xq, wq[r]);
        dot[r] = _mm256_madd_epi16(_mm256_maddubs_epi16(wu[r], xs), ones);
      }
      // [r0 r1 r2 r3 | r0 r1 r2 r3]: each lane sums 4 of a row's 8 lanes.
      __m256i rows = _mm256_hadd_epi32(_mm256_hadd_epi32(dot[0], dot[1]), _mm256_hadd_epi32(dot[2], dot[3]));
      // Offset codes: each row is split over 2 lanes, so each lane removes half of off sum(x).
      if constexpr (W::kOffset != 0) rows = _mm256_sub_epi32(rows, _mm256_set1_epi32(W::kOffset / 2 * xa.sum[i]));
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(rows), _mm256_mul_ps(dw2, _mm256_set1_ps(xa.d[i])), acc[t]);
      if constexpr (W::kMin) acc[t] = _mm256_fmadd_ps(mw, _mm256_set1_ps(xa.s[i]), acc[t]);
    }
  }
#pragma GCC unroll 4
  for (int t = 0; t < NT; ++t) {
    const __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc[t]), _mm256_extractf128_ps(acc[t], 1));
    float* yt = y + t * ldy;
    if constexpr (NR == 4) {
      _mm_storeu_ps(yt, s);
    } else {
      alignas(16) float tmp[4];
      _mm_store_ps(tmp, s);
      for (int r = 0; r < NR; ++r) yt[r] = tmp[r];
    }
  }
}

template <class W, int NR>
void qrows_x_tokens(const uint8_t* w, size_t ldw, const QuantizedActs& xa, int64_t t0, int64_t nt, float* y,
                    int64_t ldy) {
  int64_t t = 0;
  if (nt >= kQTileTokens) {
    qtile_fold<W, NR, kQTileTokens, true>(w, ldw, xa, t0, y, ldy);
    t = kQTileTokens;
  }
  for (; t + kQTileTokens <= nt; t += kQTileTokens)
    qtile_fold<W, NR, kQTileTokens, false>(w, ldw, xa, t0 + t, y + t * ldy, ldy);
  static_assert(kQTileTokens == 4, "the tail below handles 1-3 tokens");
  // Tails prefetch: they are the first pass over the rows for 1-3 tokens (decode included).
  switch (nt - t) {
    case 3: qtile_fold<W, NR, 3, true>(w, ldw, xa, t0 + t, y + t * ldy, ldy); break;
    case 2: qtile_fold<W, NR, 2, true>(w, ldw, xa, t0 + t, y + t * ldy, ldy); break;
    case 1: qtile_fold<W, NR, 1, true>(w, ldw, xa, t0 + t, y + t * ldy, ldy); break;
    default: break;
  }
}

// One token (decode): rows [r, r1) one after the other, so a thread's weights are one
// sequential stream (four rows at a time are four interleaved streams, which the hardware
// prefetcher follows poorly), prefetched kStreamPrefetchBytes ahead. Each block adds
// d_w d_x (w . x) as in the tiles, folding 4 blocks of the row instead of 4 rows.
template <class W>
void qrows_stream(const uint8_t* wd, size_t ldw, int64_t r, int64_t r1, const QuantizedActs& xa, int64_t t0, float* y) {
  constexpr int64_t kStreamPrefetchBytes = 1024;
  const int64_t nb = xa.n_blocks;
  const __m256i ones = _mm256_set1_epi16(1);
  const char* end = reinterpret_cast<const char*>(wd + r1 * ldw);
  const int8_t* xq_row = xa.qs + t0 * nb * kQBlock;  // [nb, 32]
  const float* xd = xa.d + t0 * nb;                  // [nb]
  const int32_t* xsum = xa.sum + t0 * nb;            // [nb]
  const float* xs = xa.s + t0 * nb;                  // [nb]
  for (; r < r1; ++r) {
    const auto* blocks = reinterpret_cast<const typename W::Block*>(wd + r * ldw);  // [nb]
    __m256 acc = _mm256_setzero_ps();
    __m128 macc = _mm_setzero_ps();  // q4_1/q5_1: sum of m_w s_x
    // Block b's dot product, 8 int32 lanes summing to w . x.
    auto block_dot = [&](int64_t b) {
      const __m256i wq = W::load(blocks[b]);
      const __m256i wu = W::kUnsigned ? wq : _mm256_sign_epi8(wq, wq);
      const __m256i xq = _mm256_load_si256(reinterpret_cast<const __m256i*>(xq_row + b * kQBlock));
      const __m256i xs = W::kUnsigned ? xq : _mm256_sign_epi8(xq, wq);
      return _mm256_madd_epi16(_mm256_maddubs_epi16(wu, xs), ones);
    };
    int64_t b = 0;
    // 4 blocks at a time, folded as qtile_fold folds 4 rows: lanes b and b+4 hold halves of
    // block b, so the int->float conversion and the scale FMA happen once per 4 blocks.
    for (; b + 4 <= nb; b += 4) {
      const char* pf = reinterpret_cast<const char*>(blocks + b) + kStreamPrefetchBytes;
      if (pf < end) _mm_prefetch(pf, _MM_HINT_T0);
      if (pf + 64 < end) _mm_prefetch(pf + 64, _MM_HINT_T0);  // 4 blocks span up to 3 lines
      if (pf + 128 < end) _mm_prefetch(pf + 128, _MM_HINT_T0);
      __m256i rows = _mm256_hadd_epi32(_mm256_hadd_epi32(block_dot(b), block_dot(b + 1)),
                                       _mm256_hadd_epi32(block_dot(b + 2), block_dot(b + 3)));
      // Offset codes: each block is split over 2 lanes, so each lane removes half of off sum(x).
      if constexpr (W::kOffset != 0) {
        static_assert(W::kOffset == 8 || W::kOffset == 16);
        const __m128i s4 =  // (off / 2) sum(x): a shift by 2 or 3
            _mm_slli_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(xsum + b)), W::kOffset == 16 ? 3 : 2);
        rows = _mm256_sub_epi32(rows, _mm256_set_m128i(s4, s4));
      }
      if constexpr (W::kMin) {
        const __m128 mw = _mm_cvtph_ps(_mm_setr_epi16(short(blocks[b].m), short(blocks[b + 1].m), short(blocks[b + 2].m),
                                                      short(blocks[b + 3].m), 0, 0, 0, 0));
        macc = _mm_fmadd_ps(mw, _mm_loadu_ps(xs + b), macc);
      }
      const __m128 dw = _mm_cvtph_ps(_mm_setr_epi16(short(blocks[b].d), short(blocks[b + 1].d), short(blocks[b + 2].d),
                                                    short(blocks[b + 3].d), 0, 0, 0, 0));
      const __m128 sc = _mm_mul_ps(dw, _mm_loadu_ps(xd + b));
      acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(rows), _mm256_set_m128(sc, sc), acc);
    }
    for (; b < nb; ++b) {  // the last nb % 4 blocks, one by one
      __m256i dot = block_dot(b);
      if constexpr (W::kOffset != 0) dot = _mm256_sub_epi32(dot, _mm256_set1_epi32(W::kOffset / 8 * xsum[b]));  // 8 lanes
      acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_set1_ps(fp16_to_f32(blocks[b].d) * xd[b]), acc);
      if constexpr (W::kMin) macc = _mm_add_ss(macc, _mm_set_ss(fp16_to_f32(blocks[b].m) * xs[b]));
    }
    if constexpr (W::kMin) acc = _mm256_add_ps(acc, _mm256_zextps128_ps256(macc));
    y[r] = simd::hsum(acc);
  }
}

// Rows [r, r1) in dot-product tiles of 4 rows, then a tail of 1-3 (one token: qrows_stream).
template <class W>
void qrows(const uint8_t* wd, size_t ldw, int64_t r, int64_t r1, const QuantizedActs& xa, int64_t t0, int64_t nt,
           float* yc, int64_t ldy) {
  if (nt == 1) return qrows_stream<W>(wd, ldw, r, r1, xa, t0, yc);
  for (; r + 4 <= r1; r += 4) qrows_x_tokens<W, 4>(wd + r * ldw, ldw, xa, t0, nt, yc + r, ldy);
  switch (r1 - r) {
    case 3: qrows_x_tokens<W, 3>(wd + r * ldw, ldw, xa, t0, nt, yc + r, ldy); break;
    case 2: qrows_x_tokens<W, 2>(wd + r * ldw, ldw, xa, t0, nt, yc + r, ldy); break;
    case 1: qrows_x_tokens<W, 1>(wd + r * ldw, ldw, xa, t0, nt, yc + r, ldy); break;
    default: break;
  }
}

template <class W>
void matmul_q(const TensorView& w, const float* x, float* y, int64_t n_tokens, ThreadPool& pool) {
  const int64_t n_out = w.rows(), n_in = w.cols();
  const size_t ldw = w.row_stride();
  const auto* wd = static_cast<const uint8_t*>(w.data);  // [n_out, n_in/32] blocks
  // The caller's buffer, read by every worker: bind a reference, since naming a
  // thread_local inside the lambda would resolve to the worker's own instance.
  thread_local QuantizedActs caller_acts;
  QuantizedActs& xa = caller_acts;
  prepare_acts(n_tokens, n_in, xa);
  // Prompts: quantising x is a few percent of the matmul's work, so share it across threads too.
  pool.parallel_for(n_tokens, 1, [&](int, int64_t t0, int64_t t1) { quantize_acts(x, t0, t1, xa); });
  constexpr bool kCanRepack = W::kUnsigned;  // the 4/5-bit types
  const bool repack = kCanRepack && n_tokens >= kRepackMinTokens;
  const int64_t tc = token_chunk(n_tokens);
  for_rows(pool, n_out, repack ? 8 : kTileRows, int64_t(w.nbytes()) * n_tokens, [&](int, int64_t r0, int64_t r1) {
    for (int64_t t0 = 0; t0 < n_tokens; t0 += tc) {
      const int64_t nt = std::min(tc, n_tokens - t0);
      float* yc = y + t0 * n_out;  // [nt, n_out]
      int64_t r = r0;
      if (repack) {
        const int64_t n8 = (r1 - r0) / 8 * 8;
        gemm_q32_x8(w.dtype, wd + r0 * ldw, ldw, n8, xa, t0, nt, yc + r0, n_out);
        r += n8;
      }
      qrows<W>(wd, ldw, r, r1, xa, t0, nt, yc, n_out);
    }
  });
}

}  // namespace

static_assert(kGroupMaxTokens < kRepackMinTokens, "rows_q* are the dot-product tile path");

void rows_q8_0(const TensorView& w, const QuantizedActs& xa, float* y, int64_t n_tokens, int64_t r0, int64_t r1) {
  qrows<WeightsQ8_0>(static_cast<const uint8_t*>(w.data), w.row_stride(), r0, r1, xa, 0, n_tokens, y, w.rows());
}

void rows_q4_0(const TensorView& w, const QuantizedActs& xa, float* y, int64_t n_tokens, int64_t r0, int64_t r1) {
  qrows<WeightsQ4_0>(static_cast<const uint8_t*>(w.data), w.row_stride(), r0, r1, xa, 0, n_tokens, y, w.rows());
}

void matmul_q8_0(const TensorView& w, const float* x, float* y, int64_t n_tokens, ThreadPool& pool) {
  matmul_q<WeightsQ8_0>(w, x, y, n_tokens, pool);
}

void matmul_q4_0(const TensorView& w, const float* x, float* y, int64_t n_tokens, ThreadPool& pool) {
  matmul_q<WeightsQ4_0>(w, x, y, n_tokens, pool);
}

void rows_q32(const TensorView& w, const QuantizedActs& xa, float* y, int64_t n_tokens, int64_t r0, int64_t r1) {
  const auto* wd = static_cast<const uint8_t*>(w.data);
  switch (w.dtype) {
    case DType::Q4_1: return qrows<WeightsQ4_1>(wd, w.row_stride(), r0, r1, xa, 0, n_tokens, y, w.rows());
    case DType::Q5_0: return qrows<WeightsQ5_0>(wd, w.row_stride(), r0, r1, xa, 0, n_tokens, y, w.rows());
    case DType::Q5_1: return qrows<WeightsQ5_1>(wd, w.row_stride(), r0, r1, xa, 0, n_tokens, y, w.rows());
    default: return;
  }
}

void matmul_q32(const TensorView& w, const float* x, float* y, int64_t n_tokens, ThreadPool& pool) {
  switch (w.dtype) {
    case DType::Q4_1: return matmul_q<WeightsQ4_1>(w, x, y, n_tokens, pool);
    case DType::Q5_0: return matmul_q<WeightsQ5_0>(w, x, y, n_tokens, pool);
    case DType::Q5_1: return matmul_q<WeightsQ5_1>(w, x, y, n_tokens, pool);
    default: return;
  }
}

}  // namespace mf::ops::detail
