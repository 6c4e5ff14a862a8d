// mf::ops::matmul: dispatch on the weight type.
#include <algorithm>
#include <cassert>
#include <vector>

#include "ops/cpu/matmul_impl.h"
#include "ops/cpu/quant_acts.h"
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
    case DType::Q4_1:
    case DType::Q5_0:
    case DType::Q5_1: detail::matmul_q32(w, x, y, n_tokens, pool); return;
    case DType::Q2_K:
    case DType::Q3_K:
    case DType::Q4_K:
    case DType::Q5_K:
    case DType::Q6_K: detail::matmul_kquant(w, x, y, n_tokens, pool); return;
    case DType::I32: assert(!"matmul: I32 weights"); return;
  }
}

void matmul_f32_acts(const TensorView& w, const float* x, float* y, int64_t n_tokens, ThreadPool& pool) {
  if (n_tokens <= 0 || w.rows() == 0) return;
  if (is_quantized(w.dtype))
    detail::matmul_dequant(w, x, y, n_tokens, pool);
  else
    matmul(w, x, y, n_tokens, pool);
}

namespace {

// y_i = w_i x_(i or 0): one input shared by every weight (xs.size() == 1) or one each.
void matmul_group_impl(std::span<const TensorView* const> ws, std::span<const float* const> xs, std::span<float* const> ys,
                       int64_t n_tokens, ThreadPool& pool) {
  assert(ws.size() == ys.size() && (xs.size() == 1 || xs.size() == ws.size()));
  auto x_of = [&](size_t i) { return xs[xs.size() == 1 ? 0 : i]; };
  const DType dt = ws.empty() ? DType::F32 : ws[0]->dtype;
  int64_t rows = 0, bytes = 0;
  bool fusable = n_tokens > 0 && n_tokens <= detail::kGroupMaxTokens && dt != DType::I32;
  for (const TensorView* w : ws) {
    fusable = fusable && w->dtype == dt && w->cols() == ws[0]->cols();
    rows += w->rows();
    bytes += int64_t(w->nbytes()) * n_tokens;
  }
  if (!fusable || bytes < detail::kParallelMinBytes) {  // separate calls (small ones run inline anyway)
    for (size_t i = 0; i < ws.size(); ++i) matmul(*ws[i], x_of(i), ys[i], n_tokens, pool);
    return;
  }
  const bool quantised = is_quantized(dt);
  thread_local std::vector<detail::QuantizedActs> caller_acts;  // bound by reference: workers read the caller's
  std::vector<detail::QuantizedActs>& xa = caller_acts;
  if (quantised) {
    if (xa.size() < xs.size()) xa.resize(xs.size());
    for (size_t j = 0; j < xs.size(); ++j) {
      detail::prepare_acts(n_tokens, ws[0]->cols(), xa[j], /*k=*/is_kquant(dt));
      detail::quantize_acts(xs[j], 0, n_tokens, xa[j]);
    }
  }
  pool.parallel_for(rows, detail::kTileRows, [&](int, int64_t g0, int64_t g1) {
    int64_t off = 0;  // first global row of matrix i
    for (size_t i = 0; i < ws.size(); off += ws[i]->rows(), ++i) {
      const int64_t r0 = std::max(g0, off) - off, r1 = std::min(g1, off + ws[i]->rows()) - off;
      if (r0 >= r1) continue;
      const float* x = x_of(i);
      const detail::QuantizedActs* qa = quantised ? &xa[xs.size() == 1 ? 0 : i] : nullptr;
      switch (dt) {
        case DType::F32: detail::rows_f32(*ws[i], x, ys[i], n_tokens, r0, r1); break;
        case DType::F16: detail::rows_f16(*ws[i], x, ys[i], n_tokens, r0, r1); break;
        case DType::BF16: detail::rows_bf16(*ws[i], x, ys[i], n_tokens, r0, r1); break;
        case DType::Q8_0: detail::rows_q8_0(*ws[i], *qa, ys[i], n_tokens, r0, r1); break;
        case DType::Q4_0: detail::rows_q4_0(*ws[i], *qa, ys[i], n_tokens, r0, r1); break;
        case DType::Q4_1:
        case DType::Q5_0:
        case DType::Q5_1: detail::rows_q32(*ws[i], *qa, ys[i], n_tokens, r0, r1); break;
        case DType::Q2_K:
        case DType::Q3_K:
        case DType::Q4_K:
        case DType::Q5_K:
        case DType::Q6_K: detail::rows_kquant(*ws[i], *qa, ys[i], n_tokens, r0, r1); break;
        case DType::I32: break;
      }
    }
  });
}

}  // namespace

void matmul_group(std::span<const TensorView* const> ws, const float* x, std::span<float* const> ys, int64_t n_tokens,
                  ThreadPool& pool) {
  matmul_group_impl(ws, {&x, 1}, ys, n_tokens, pool);
}

void matmul_group(std::span<const TensorView* const> ws, std::span<const float* const> xs, std::span<float* const> ys,
                  int64_t n_tokens, ThreadPool& pool) {
  matmul_group_impl(ws, xs, ys, n_tokens, pool);
}

}  // namespace mf::ops
