// Activations quantised for the integer dot products of the quantised matmuls (internal to
// ops/cpu), in GGML's vec_dot_type of the weights: q8_0 (with q8_1's s for q4_1/q5_1) for the
// 32-value types, q8_K for the k-quants. Values are those of ref::quantize_row(Q8_0) /
// ref::detail::quantize_row_q8_1 / quantize_row_q8_K exactly; the layout is split for
// aligned 32-byte loads and float scales ready to use.
#pragma once
#include <cstdint>
#include <vector>

#include "core/dtype.h"

namespace mf::ops::detail {

struct QuantizedActs {
  bool k = false;            // q8_K (256-value blocks) rather than q8_0/q8_1 (32)
  int64_t n_blocks = 0;      // blocks per token row
  int8_t* qs = nullptr;      // [n_tokens, n_blocks, 32 or 256]
  float* d = nullptr;        // [n_tokens, n_blocks] scale (q8_0: the fp16-rounded value, as f32; q8_K: f32)
  int32_t* sum = nullptr;    // q8_0: [n_tokens, n_blocks] sum(qs): corrections for offset (unsigned) weight codes
  float* s = nullptr;        // q8_0: [n_tokens, n_blocks] q8_1's s = fp16(d * sum(qs)), as f32 (times q4_1's m)
  int16_t* bsums = nullptr;  // q8_K: [n_tokens, n_blocks, 16] sums of 16 codes
  std::vector<uint8_t> storage;
};

// Sizes acts for n_tokens rows of n values (n % 32 == 0, or n % 256 == 0 with k: q8_K),
// reusing its storage.
void prepare_acts(int64_t n_tokens, int64_t n, QuantizedActs& acts, bool k = false);
// Quantises token rows [t0, t1) of x[n_tokens, n] into prepared acts (rows are independent,
// so threads may fill disjoint ranges).
void quantize_acts(const float* x, int64_t t0, int64_t t1, QuantizedActs& acts);

// q4_0/q4_1/q5_0/q5_1 prefill on 8-row groups repacked per call (gemm_q32_x8.cpp): y[t, r]
// for r < n_rows (a multiple of 8), t in [t0, t0 + nt). w: [n_rows] rows of type t of stride
// ldw; y: [nt, ldy].
void gemm_q32_x8(DType t, const uint8_t* w, size_t ldw, int64_t n_rows, const QuantizedActs& xa, int64_t t0,
                 int64_t nt, float* y, int64_t ldy);

// k-quant prefill on 8-row groups repacked per call (gemm_kquant_x8.cpp), the same contract
// with q8_K acts.
void gemm_kquant_x8(DType t, const uint8_t* w, size_t ldw, int64_t n_rows, const QuantizedActs& xa, int64_t t0,
                    int64_t nt, float* y, int64_t ldy);

// One row of n floats to q8_0 blocks, bit-identical to ref::quantize_row(DType::Q8_0).
void quantize_row_q8_0(const float* x, void* dst, int64_t n);

}  // namespace mf::ops::detail
