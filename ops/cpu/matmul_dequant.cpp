// Quantised weights without activation quantisation (ops::matmul_f32_acts, for comparisons
// with f32 implementations): each thread dequantises a panel of rows to f32 (the fast
// dequantize_row), then runs the f32 GEMM tile on it. Exact up to f32 summation order, slower
// than the integer kernels since every weight is expanded to 4 bytes before use.
#include <algorithm>
#include <vector>

#include "ops/cpu/gemm_tile.h"
#include "ops/cpu/matmul_impl.h"
#include "ops/ops.h"

namespace mf::ops::detail {

namespace {

constexpr int64_t kPanelRows = 16;  // rows dequantised at once: [16, n_in] f32 stays in L2

void rows_dequant(const TensorView& w, const float* x, float* y, int64_t n_tokens, int64_t r0, int64_t r1) {
  const int64_t n_out = w.rows(), n_in = w.cols();
  thread_local std::vector<float> panel;
  panel.resize(size_t(kPanelRows * n_in));  // [kPanelRows, n_in]
  for (int64_t p0 = r0; p0 < r1; p0 += kPanelRows) {
    const int64_t np = std::min(kPanelRows, r1 - p0);
    for (int64_t r = 0; r < np; ++r) dequantize_row(w.dtype, w.row(p0 + r), panel.data() + r * n_in, n_in);
    gemm_rows<LoadF32>(panel.data(), n_in, np, x, n_in, n_tokens, y + p0, n_out, n_in, false);
  }
}

}  // namespace

void matmul_dequant(const TensorView& w, const float* x, float* y, int64_t n_tokens, ThreadPool& pool) {
  for_rows(pool, w.rows(), kTileRows, int64_t(w.nbytes()) * n_tokens,
           [&](int, int64_t r0, int64_t r1) { rows_dequant(w, x, y, n_tokens, r0, r1); });
}

}  // namespace mf::ops::detail
