// Activations quantised to q8_0 for the integer dot products of q8_0/q4_0 matmuls
// (internal to ops/cpu). Values are those of ref::quantize_row(Q8_0) exactly; the layout is
// split for aligned 32-byte loads and float scales ready to use.
#pragma once
#include <cstdint>
#include <vector>

namespace mf::ops::detail {

struct QuantizedActs {
  int64_t n_blocks = 0;      // blocks per token row
  int8_t* qs = nullptr;      // [n_tokens, n_blocks, 32]
  float* d = nullptr;        // [n_tokens, n_blocks] scale (the fp16-rounded value, as f32)
  int32_t* sum = nullptr;    // [n_tokens, n_blocks] sum(qs): corrections for offset (unsigned) weight codes
  std::vector<uint8_t> storage;
};

// Sizes acts for n_tokens rows of n (n % 32 == 0) values, reusing its storage.
void prepare_acts(int64_t n_tokens, int64_t n, QuantizedActs& acts);
// Quantises token rows [t0, t1) of x[n_tokens, n] into prepared acts (rows are independent,
// so threads may fill disjoint ranges).
void quantize_acts(const float* x, int64_t t0, int64_t t1, QuantizedActs& acts);

// q4_0 prefill on 8-row groups repacked per call (gemm_q4_0.cpp): y[t, r] for r < n_rows
// (a multiple of 8), t in [t0, t0 + nt). w: [n_rows] q4_0 rows of stride ldw; y: [nt, ldy].
void gemm_q4_0_x8(const uint8_t* w, size_t ldw, int64_t n_rows, const QuantizedActs& xa, int64_t t0, int64_t nt,
                  float* y, int64_t ldy);

// One row of n floats to q8_0 blocks, bit-identical to ref::quantize_row(DType::Q8_0).
void quantize_row_q8_0(const float* x, void* dst, int64_t n);

}  // namespace mf::ops::detail
