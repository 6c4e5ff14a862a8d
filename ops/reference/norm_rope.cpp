// Scalar RMSNorm and rotary position embedding.
#include <cmath>

#include "ops/ops.h"

namespace mf::ref {

void rmsnorm(const float* x, const float* weight, float* y, int64_t n_tokens, int64_t n, float eps) {
  for (int64_t t = 0; t < n_tokens; ++t) {
    const float* xt = x + t * n;  // [n]
    float* yt = y + t * n;        // [n]
    double ss = 0.0;
    for (int64_t i = 0; i < n; ++i) ss += double(xt[i]) * double(xt[i]);
    const float scale = float(1.0 / std::sqrt(ss / double(n) + double(eps)));
    for (int64_t i = 0; i < n; ++i) yt[i] = xt[i] * scale * weight[i];
  }
}

void rope(float* x, const int32_t* pos, int64_t n_tokens, int n_head, int head_dim, const float* inv_freq, bool neox) {
  const int half = head_dim / 2;
  for (int64_t t = 0; t < n_tokens; ++t) {
    for (int h = 0; h < n_head; ++h) {
      float* xh = x + (t * n_head + h) * head_dim;  // [head_dim]
      for (int i = 0; i < half; ++i) {
        // The angle is formed in float, as Hugging Face and GGML do.
        const float theta = float(pos[t]) * inv_freq[i];
        const float c = std::cos(theta), s = std::sin(theta);
        const int i0 = neox ? i : 2 * i;
        const int i1 = neox ? i + half : 2 * i + 1;
        const float a = xh[i0], b = xh[i1];
        xh[i0] = a * c - b * s;
        xh[i1] = a * s + b * c;
      }
    }
  }
}

}  // namespace mf::ref
