// Low-rank (LoRA) updates of a linear map's output, applied per token: y[row] += coef * B (A x[row]).
// A token may take several adapters (a routed library) with its own coefficient for each; only
// the chosen adapters' factors are read. The scalar reference (mf::ref) defines the result, the
// fast path (mf::ops) vectorises the two small products and spreads rows over threads.
#pragma once
#include <cstdint>
#include <span>

#include "core/thread_pool.h"

namespace mf {

// One adapter's factors for one linear map, f32: a [rank, n_in], bt [rank, n_out] (B transposed,
// so B t is a sum of bt's rows and vectorises along n_out).
struct LoraFactors {
  const float* a = nullptr;
  const float* bt = nullptr;
  int64_t rank = 0;
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
}  // namespace ops

}  // namespace mf
