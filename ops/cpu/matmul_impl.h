// Per-dtype matmul kernels behind mf::ops::matmul (internal to ops/cpu).
// All compute y[n_tokens, n_out] = x[n_tokens, n_in] * w[n_out, n_in]^T.
#pragma once
#include <cstdint>

#include "core/tensor.h"
#include "core/thread_pool.h"

namespace mf::ops::detail {

// Rows per register tile and per thread chunk (chunks stay multiples of this).
inline constexpr int kTileRows = 4;

void matmul_f32(const TensorView& w, const float* x, float* y, int64_t n_tokens, ThreadPool& pool);
void matmul_f16(const TensorView& w, const float* x, float* y, int64_t n_tokens, ThreadPool& pool);
void matmul_bf16(const TensorView& w, const float* x, float* y, int64_t n_tokens, ThreadPool& pool);
void matmul_q8_0(const TensorView& w, const float* x, float* y, int64_t n_tokens, ThreadPool& pool);
void matmul_q4_0(const TensorView& w, const float* x, float* y, int64_t n_tokens, ThreadPool& pool);
// q4_1, q5_0, q5_1 (matmul_quant.cpp) and the k-quants q2_K..q6_K (matmul_kquant.cpp), with
// activations in GGML's vec_dot_type (q8_1, q8_0, q8_K).
void matmul_q32(const TensorView& w, const float* x, float* y, int64_t n_tokens, ThreadPool& pool);
void matmul_kquant(const TensorView& w, const float* x, float* y, int64_t n_tokens, ThreadPool& pool);
// Quantised weights times unquantised activations (ops::matmul_f32_acts): rows dequantised to
// f32 panels, then the f32 tile (matmul_dequant.cpp).
void matmul_dequant(const TensorView& w, const float* x, float* y, int64_t n_tokens, ThreadPool& pool);

// Small batches (decode, a few sequences): rows [r0, r1) of y = x w^T on the calling thread,
// the same arithmetic as the matmul_* above, so that several matmuls on one input can share
// one parallel pass (ops::matmul_group). The quantised ones take x already quantised.
inline constexpr int64_t kGroupMaxTokens = 4;
struct QuantizedActs;
void rows_f32(const TensorView& w, const float* x, float* y, int64_t n_tokens, int64_t r0, int64_t r1);
void rows_f16(const TensorView& w, const float* x, float* y, int64_t n_tokens, int64_t r0, int64_t r1);
void rows_bf16(const TensorView& w, const float* x, float* y, int64_t n_tokens, int64_t r0, int64_t r1);
void rows_q8_0(const TensorView& w, const QuantizedActs& xa, float* y, int64_t n_tokens, int64_t r0, int64_t r1);
void rows_q4_0(const TensorView& w, const QuantizedActs& xa, float* y, int64_t n_tokens, int64_t r0, int64_t r1);
void rows_q32(const TensorView& w, const QuantizedActs& xa, float* y, int64_t n_tokens, int64_t r0, int64_t r1);
void rows_kquant(const TensorView& w, const QuantizedActs& xa, float* y, int64_t n_tokens, int64_t r0, int64_t r1);

// Matmuls whose work (weight bytes x tokens) is below this run on the calling thread alone:
// for them, handing half the rows to a worker and waiting for it costs more than it saves
// (docs/benchmarks.md, "small matmuls").
inline constexpr int64_t kParallelMinBytes = 96 << 10;

// pool.parallel_for over the n_out rows, or fn(0, 0, n_out) inline for small work.
template <class Fn>
void for_rows(ThreadPool& pool, int64_t n_out, int64_t grain, int64_t work_bytes, const Fn& fn) {
  if (work_bytes < kParallelMinBytes) {
    fn(0, int64_t(0), n_out);
    return;
  }
  pool.parallel_for(n_out, grain, fn);
}

// Prefill blocking: tokens per pass over a thread's rows (x chunk stays in L2) and the
// longest k slice per pass (a 4-row weight panel plus 3 activation rows stay in L1).
inline constexpr int64_t kTokenChunk = 128;
inline constexpr int64_t kMaxKSlice = 768;

// Tokens per pass: n split into equal chunks of at most kTokenChunk (128 tokens is one
// pass, not 120 + 8 with the weights streamed twice).
inline int64_t token_chunk(int64_t n) {
  const int64_t passes = (n + kTokenChunk - 1) / kTokenChunk;
  return (n + passes - 1) / passes;
}

// Splits k into equal slices of at most kMaxKSlice, rounded up to a multiple of 8.
inline int64_t k_slice(int64_t k) {
  const int64_t n = (k + kMaxKSlice - 1) / kMaxKSlice;
  return ((k + n - 1) / n + 7) / 8 * 8;
}

}  // namespace mf::ops::detail
