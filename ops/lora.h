// Low-rank (LoRA) updates of a linear map's output, applied per token: y[row] += coef * B (A x[row]).
// A token may take several adapters (a routed library) with its own coefficient for each; only
// the chosen adapters' factors are read. The scalar reference (mf::ref) defines the result, the
// fast path (mf::ops) vectorises the two small products and spreads rows over threads.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "core/thread_pool.h"

namespace mf {

// One adapter's factors for one linear map: a [rank, n_in], bt [rank, n_out] (B transposed, so
// B t is a sum of bt's rows and vectorises along n_out), f32 or f16 (half the bytes to stream in
// decode; products and sums stay f32).
struct LoraFactors {
  const void* a = nullptr;
  const void* bt = nullptr;
  int64_t rank = 0;
  bool f16 = false;
};

// One contribution: y[row] += coef * B_adapter (A_adapter x[row]). coef carries the adapter's
// alpha/rank scale times its routing weight.
struct LoraTerm {
  int32_t row;
  int32_t adapter;  // index into the factors list
  float coef;
};

namespace ref {
// x [n_rows, n_in], y [n_rows, n_out]; terms in any order.
void lora_add(std::span<const LoraFactors> adapters, std::span<const LoraTerm> terms, const float* x, int64_t n_in,
              float* y, int64_t n_out);
}  // namespace ref

namespace ops {
// As ref::lora_add, but terms must be sorted by row (a row's terms adjacent), so that threads
// own disjoint rows. Results equal the reference up to f32 summation order.
void lora_add(std::span<const LoraFactors> adapters, std::span<const LoraTerm> terms, const float* x, int64_t n_in,
              float* y, int64_t n_out, ThreadPool& pool);
// Single-threaded, for callers that split a few rows' outputs across their own threads: as
// lora_add but only columns [o0, o1) of y change (every term's A x is still computed).
// t: scratch.
void lora_add_columns(std::span<const LoraFactors> adapters, std::span<const LoraTerm> terms, const float* x,
                      int64_t n_in, float* y, int64_t n_out, int64_t o0, int64_t o1, std::vector<float>& t);
// y [n_rows] = w [n_rows, n] x [n], f32, single-threaded (scores inside a caller's thread).
void matvec_f32(const float* w, int64_t n_rows, int64_t n, const float* x, float* y);
}  // namespace ops

}  // namespace mf
