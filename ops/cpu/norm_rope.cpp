// Vectorised RMSNorm and RoPE (single-threaded: both are cheap next to the matmuls).
#include <immintrin.h>

#include <cmath>
#include <vector>

#include "ops/cpu/simd.h"
#include "ops/ops.h"

namespace mf::ops {

void rmsnorm(const float* x, const float* weight, float* y, int64_t n_tokens, int64_t n, float eps) {
  for (int64_t t = 0; t < n_tokens; ++t) {
    const float* xt = x + t * n;  // [n]
    float* yt = y + t * n;        // [n]
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
      const __m256 a = _mm256_loadu_ps(xt + i), b = _mm256_loadu_ps(xt + i + 8);
      s0 = _mm256_fmadd_ps(a, a, s0);
      s1 = _mm256_fmadd_ps(b, b, s1);
    }
    float ss = simd::hsum(_mm256_add_ps(s0, s1));
    for (; i < n; ++i) ss += xt[i] * xt[i];
    const float scale = 1.0f / std::sqrt(ss / float(n) + eps);
    const __m256 sv = _mm256_set1_ps(scale);
    i = 0;
    for (; i + 8 <= n; i += 8)
      _mm256_storeu_ps(yt + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(xt + i), sv), _mm256_loadu_ps(weight + i)));
    for (; i < n; ++i) yt[i] = xt[i] * scale * weight[i];
  }
}

void rope(float* x, const int32_t* pos, int64_t n_tokens, int n_head, int head_dim, const float* inv_freq, bool neox) {
  const int half = head_dim / 2;
  // cos/sin of each pair, laid out like the data they multiply: [half] for neox, and
  // interleaved [head_dim] (sin negated on even slots) for adjacent pairs.
  thread_local std::vector<float> cs, sn;
  cs.resize(size_t(head_dim));
  sn.resize(size_t(head_dim));
  for (int64_t t = 0; t < n_tokens; ++t) {
    for (int i = 0; i < half; ++i) {
      const float theta = float(pos[t]) * inv_freq[i];  // formed in float, as the reference does
      const float c = std::cos(theta), s = std::sin(theta);
      if (neox) {
        cs[i] = c;
        sn[i] = s;
      } else {
        cs[2 * i] = cs[2 * i + 1] = c;
        sn[2 * i] = -s;
        sn[2 * i + 1] = s;
      }
    }
    for (int h = 0; h < n_head; ++h) {
      float* xh = x + (t * n_head + h) * head_dim;  // [head_dim]
      int i = 0;
      if (neox) {
        for (; i + 8 <= half; i += 8) {
          const __m256 a = _mm256_loadu_ps(xh + i), b = _mm256_loadu_ps(xh + half + i);
          const __m256 c = _mm256_loadu_ps(cs.data() + i), s = _mm256_loadu_ps(sn.data() + i);
          _mm256_storeu_ps(xh + i, _mm256_fmsub_ps(a, c, _mm256_mul_ps(b, s)));
          _mm256_storeu_ps(xh + half + i, _mm256_fmadd_ps(a, s, _mm256_mul_ps(b, c)));
        }
        for (; i < half; ++i) {
          const float a = xh[i], b = xh[half + i];
          xh[i] = a * cs[i] - b * sn[i];
          xh[half + i] = a * sn[i] + b * cs[i];
        }
      } else {
        for (; i + 8 <= 2 * half; i += 8) {
          const __m256 v = _mm256_loadu_ps(xh + i);
          const __m256 swapped = _mm256_permute_ps(v, 0xb1);  // (b, a) per pair
          _mm256_storeu_ps(xh + i, _mm256_fmadd_ps(v, _mm256_loadu_ps(cs.data() + i),
                                                   _mm256_mul_ps(swapped, _mm256_loadu_ps(sn.data() + i))));
        }
        for (; i < 2 * half; i += 2) {
          const float a = xh[i], b = xh[i + 1];
          xh[i] = a * cs[i] + b * sn[i];
          xh[i + 1] = b * cs[i + 1] + a * sn[i + 1];
        }
      }
    }
  }
}

}  // namespace mf::ops
