// The quantised types beyond q8_0/q4_0 (internal to ops/reference; ref::dequantize_row and
// ref::quantize_row dispatch here). Each returns false for a type it does not handle.
#pragma once
#include <cstdint>

#include "core/dtype.h"

namespace mf::ref::detail {

bool dequantize_row_more(DType t, const void* src, float* dst, int64_t n);
// q4_1, q5_0, q5_1 as GGML's reference quantisers; the k-quants are not handled here.
bool quantize_row_more(DType t, const float* src, void* dst, int64_t n);
// q4_K, q5_K, q6_K as llama.cpp's quantize_row_qX_K_ref (quantize_kquants.cpp).
bool quantize_row_kquant(DType t, const float* src, void* dst, int64_t n);

}  // namespace mf::ref::detail
