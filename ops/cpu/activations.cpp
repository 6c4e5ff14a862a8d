// Vectorised softmax, argmax, SwiGLU and GeGLU, the exponentials with the polynomial exp of simd.h (~2e-7 relative error).
#include <immintrin.h>

#include <cmath>

#include "ops/cpu/simd.h"
#include "ops/ops.h"

namespace mf::ops {

void softmax(float* x, int64_t n) {
  if (n <= 0) return;
  // Shared with attention's softmax over scores (simd.h).
  const float sum = simd::exp_sum(x, n, simd::max_of(x, n));
  const float inv = 1.0f / sum;
  const __m256 iv = _mm256_set1_ps(inv);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), iv));
  for (; i < n; ++i) x[i] *= inv;
}

int64_t argmax(const float* x, int64_t n) {
  // Two passes over data that is in L1/L2 (a vocabulary of logits): the maximum, then its
  // first position. std::max_element's one scalar pass costs ~30 us for 8192 logits here.
  __m256 mv = _mm256_set1_ps(-INFINITY);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) mv = _mm256_max_ps(_mm256_loadu_ps(x + i), mv);  // a NaN in x yields mv
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, mv);
  float max = -INFINITY;
  for (float v : lanes) max = v > max ? v : max;
  for (; i < n; ++i) max = x[i] > max ? x[i] : max;
  const __m256 target = _mm256_set1_ps(max);
  for (i = 0; i + 8 <= n; i += 8) {
    const int mask = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + i), target, _CMP_EQ_OQ));
    if (mask) return i + __builtin_ctz(unsigned(mask));
  }
  for (; i < n; ++i)
    if (x[i] == max) return i;
  return 0;
}

void swiglu(const float* gate, const float* up, float* out, int64_t n) {
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 sign = _mm256_set1_ps(-0.0f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 g = _mm256_loadu_ps(gate + i);
    const __m256 e = simd::exp(_mm256_xor_ps(g, sign));  // e^-g
    const __m256 silu = _mm256_div_ps(g, _mm256_add_ps(one, e));
    _mm256_storeu_ps(out + i, _mm256_mul_ps(silu, _mm256_loadu_ps(up + i)));
  }
  for (; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

// gelu_tanh(x) = x/2 (1 + tanh(z)) = x / (1 + e^(-2z)), z = sqrt(2/pi) (x + 0.044715 x^3):
// one exponential per value, as SwiGLU's sigmoid.
void geglu(const float* gate, const float* up, float* out, int64_t n) {
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 k1 = _mm256_set1_ps(-2.0f * 0.7978845608028654f);
  const __m256 k3 = _mm256_set1_ps(0.044715f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 g = _mm256_loadu_ps(gate + i);
    const __m256 inner = _mm256_fmadd_ps(_mm256_mul_ps(k3, g), _mm256_mul_ps(g, g), g);  // x + 0.044715 x^3
    const __m256 e = simd::exp(_mm256_mul_ps(k1, inner));                             // e^(-2z)
    const __m256 gelu = _mm256_div_ps(g, _mm256_add_ps(one, e));
    _mm256_storeu_ps(out + i, _mm256_mul_ps(gelu, _mm256_loadu_ps(up + i)));
  }
  for (; i < n; ++i) {
    const float g = gate[i];
    const float z = 0.7978845608028654f * (g + 0.044715f * g * g * g);
    out[i] = 0.5f * g * (1.0f + std::tanh(z)) * up[i];
  }
}

}  // namespace mf::ops
