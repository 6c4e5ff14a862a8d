// Scalar matmul: dequantise each weight row, then dot products accumulated in double
// so the reference is closer to exact than any fast path it judges.
#include <vector>

#include "ops/ops.h"

namespace mf::ref {

void matmul(const TensorView& w, const float* x, float* y, int64_t n_tokens) {
  const int64_t n_out = w.rows(), n_in = w.cols();
  std::vector<float> row(static_cast<size_t>(n_in));  // [n_in]
  for (int64_t o = 0; o < n_out; ++o) {
    dequantize_row(w.dtype, w.row(o), row.data(), n_in);
    for (int64_t t = 0; t < n_tokens; ++t) {
      const float* xt = x + t * n_in;  // [n_in]
      double acc = 0.0;
      for (int64_t i = 0; i < n_in; ++i) acc += double(row[i]) * double(xt[i]);
      y[t * n_out + o] = float(acc);  // y: [n_tokens, n_out]
    }
  }
}

}  // namespace mf::ref
