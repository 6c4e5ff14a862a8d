// mf::ops::matmul: dispatch on the weight type.
#include <cassert>

#include "ops/cpu/matmul_impl.h"
#include "ops/ops.h"

namespace mf::ops {

void matmul(const TensorView& w, const float* x, float* y, int64_t n_tokens, ThreadPool& pool) {
  if (n_tokens <= 0 || w.rows() == 0) return;
  switch (w.dtype) {
    case DType::F32: detail::matmul_f32(w, x, y, n_tokens, pool); return;
    case DType::F16: detail::matmul_f16(w, x, y, n_tokens, pool); return;
    case DType::BF16: detail::matmul_bf16(w, x, y, n_tokens, pool); return;
    case DType::Q8_0: detail::matmul_q8_0(w, x, y, n_tokens, pool); return;
    case DType::Q4_0: detail::matmul_q4_0(w, x, y, n_tokens, pool); return;
    case DType::I32: assert(!"matmul: I32 weights"); return;
  }
}

}  // namespace mf::ops
