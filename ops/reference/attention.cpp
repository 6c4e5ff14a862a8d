// Scalar causal attention with grouped-query heads over a position-major KV cache.
#include <algorithm>
#include <cmath>
#include <vector>

#include "ops/ops.h"

namespace mf::ref {

void attention(const float* q, const float* k, const float* v, float* out, const AttentionParams& p) {
  const int hd = p.head_dim;
  const int64_t kv_stride = p.kv_stride ? p.kv_stride : int64_t(p.n_head_kv) * hd;
  const int group = p.n_head / p.n_head_kv;  // query heads per kv head
  std::vector<float> scores(static_cast<size_t>(p.n_past + p.n_tokens));  // [n_kv]
  for (int64_t t = 0; t < p.n_tokens; ++t) {
    const int64_t end = p.n_past + t + 1;  // causal: positions ..n_past+t
    const int64_t lo = p.window > 0 ? std::max<int64_t>(0, end - p.window) : 0;
    const int64_t n_kv = end - lo;  // keys lo..end-1
    for (int h = 0; h < p.n_head; ++h) {
      const float* qh = q + (t * p.n_head + h) * hd;  // [head_dim]
      const int64_t kv_off = lo * kv_stride + int64_t(h / group) * hd;
      for (int64_t j = 0; j < n_kv; ++j) {
        const float* kj = k + j * kv_stride + kv_off;  // [head_dim]
        double dot = 0.0;
        for (int d = 0; d < hd; ++d) dot += double(qh[d]) * double(kj[d]);
        scores[j] = float(dot) * p.scale;
      }
      softmax(scores.data(), n_kv);
      float* oh = out + (t * p.n_head + h) * hd;  // [head_dim]
      for (int d = 0; d < hd; ++d) {
        double acc = 0.0;
        for (int64_t j = 0; j < n_kv; ++j) acc += double(scores[j]) * double(v[j * kv_stride + kv_off + d]);
        oh[d] = float(acc);
      }
    }
  }
}

}  // namespace mf::ref
