// Activation formats of GGML's integer matmuls and the scalar vec-dots of every quantised
// weight type against them (internal to ops and its tests; ggml-quants.c / ggml-cpu's
// reference vec_dot, re-derived): an exact integer dot per block or super-block, then
// float scaling. These define what the fast kernels in ops/cpu must compute.
#pragma once
#include <cstdint>

#include "core/dtype.h"

namespace mf::ref::detail {

// GGML's block_q8_1: q8_0 codes and scale plus s = d * sum(qs) (both fp16), the
// activations of q4_1/q5_1 (their minimum m multiplies s).
struct BlockQ8_1 {
  uint16_t d, s;
  int8_t qs[32];
};
// GGML's block_q8_K: the activations of the k-quants. d is a float; bsums[j] sums codes
// 16j..16j+15 (the minimum / code-offset terms need only these).
struct BlockQ8_K {
  float d;
  int8_t qs[256];
  int16_t bsums[16];
};
static_assert(sizeof(BlockQ8_1) == 36 && sizeof(BlockQ8_K) == 292);

// The activation format a weight type's dot product takes (GGML's vec_dot_type).
enum class ActFormat { Q8_0, Q8_1, Q8_K };
ActFormat act_format(DType w);

// quantize_row_q8_1_ref / quantize_row_q8_K_ref: n % 32 (q8_1) or n % 256 (q8_K) == 0.
void quantize_row_q8_1(const float* x, BlockQ8_1* y, int64_t n);
void quantize_row_q8_K(const float* x, BlockQ8_K* y, int64_t n);
// The activations of weight type w, quantised (xq: n / 32 or n / 256 blocks of that format)
// and back to floats (what ref::matmul must see to match the integer kernels).
void quantize_acts(DType w, const float* x, void* xq, int64_t n);
void dequantize_acts(DType w, const void* xq, float* x, int64_t n);
size_t acts_row_bytes(DType w, int64_t n);

// sum_i w[i] x[i] for one row of n values of type t (q8_0, q4_0, q4_1, q5_0, q5_1, q2_K..q6_K)
// against acts quantised by quantize_acts(t, ...): the reference vec_dot's arithmetic.
float vec_dot(DType t, const void* w, const void* xq, int64_t n);

}  // namespace mf::ref::detail
