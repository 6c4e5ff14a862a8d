// f32-weight matmul: the register-tiled GEMM straight on the weight rows.
#include <algorithm>

#include "ops/cpu/gemm_tile.h"
#include "ops/cpu/matmul_impl.h"

namespace mf::ops::detail {

void rows_f32(const TensorView& w, const float* x, float* y, int64_t n_tokens, int64_t r0, int64_t r1) {
  const int64_t n_out = w.rows(), n_in = w.cols();
  const float* wd = w.f32();  // [n_out, n_in]
  // Few tokens: x stays in L1 anyway, so one pass over k streams each weight row once.
  const int64_t kc = n_tokens <= 2 * kTileTokens ? n_in : k_slice(n_in);
  const int64_t tc = token_chunk(n_tokens);
  for (int64_t t0 = 0; t0 < n_tokens; t0 += tc) {
    const int64_t nt = std::min(tc, n_tokens - t0);
    for (int64_t k0 = 0; k0 < n_in; k0 += kc) {
      gemm_rows<LoadF32>(wd + r0 * n_in + k0, n_in, r1 - r0, x + t0 * n_in + k0, n_in, nt, y + t0 * n_out + r0, n_out,
                         std::min(kc, n_in - k0), k0 > 0);
    }
  }
}

void matmul_f32(const TensorView& w, const float* x, float* y, int64_t n_tokens, ThreadPool& pool) {
  for_rows(pool, w.rows(), kTileRows, int64_t(w.nbytes()) * n_tokens,
           [&](int, int64_t r0, int64_t r1) { rows_f32(w, x, y, n_tokens, r0, r1); });
}

}  // namespace mf::ops::detail
