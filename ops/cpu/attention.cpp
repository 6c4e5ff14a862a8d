// Causal GQA attention over a position-major KV cache, parallel over (head, query token).
// Each task: scores = q.K^T * scale over the visible positions, softmax, out = P.V.
#include <immintrin.h>

#include <vector>

#include "ops/cpu/simd.h"
#include "ops/ops.h"

namespace mf::ops {

namespace {

// scores[j] = scale * dot(q, k[j*ks]) for j < n, four keys at a time to share horizontal sums.
void qk_scores(const float* q, const float* k, int64_t ks, int64_t n, int hd, float scale, float* scores) {
  const int hd8 = hd & ~7;
  int64_t j = 0;
  for (; j + 4 <= n; j += 4) {
    const float* k0 = k + j * ks;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int d = 0; d < hd8; d += 8) {
      const __m256 qv = _mm256_loadu_ps(q + d);
      a0 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k0 + d), a0);
      a1 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k0 + ks + d), a1);
      a2 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k0 + 2 * ks + d), a2);
      a3 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k0 + 3 * ks + d), a3);
    }
    alignas(16) float s[4];
    _mm_store_ps(s, simd::hsum4(a0, a1, a2, a3));
    for (int d = hd8; d < hd; ++d)
      for (int u = 0; u < 4; ++u) s[u] += q[d] * k0[u * ks + d];
    for (int u = 0; u < 4; ++u) scores[j + u] = s[u] * scale;
  }
  for (; j < n; ++j) {
    const float* kj = k + j * ks;
    __m256 a = _mm256_setzero_ps();
    for (int d = 0; d < hd8; d += 8) a = _mm256_fmadd_ps(_mm256_loadu_ps(q + d), _mm256_loadu_ps(kj + d), a);
    float s = simd::hsum(a);
    for (int d = hd8; d < hd; ++d) s += q[d] * kj[d];
    scores[j] = s * scale;
  }
}

// out[0..hd) = sum_j p[j] * v[j*vs], accumulating 64 dims at a time in registers.
void pv_accumulate(const float* p, const float* v, int64_t vs, int64_t n, int hd, float* out) {
  int d0 = 0;
  for (; d0 + 64 <= hd; d0 += 64) {
    __m256 acc[8];
    for (auto& a : acc) a = _mm256_setzero_ps();
    for (int64_t j = 0; j < n; ++j) {
      const __m256 pj = _mm256_broadcast_ss(p + j);
      const float* vj = v + j * vs + d0;
#pragma GCC unroll 8
      for (int u = 0; u < 8; ++u) acc[u] = _mm256_fmadd_ps(pj, _mm256_loadu_ps(vj + 8 * u), acc[u]);
    }
    for (int u = 0; u < 8; ++u) _mm256_storeu_ps(out + d0 + 8 * u, acc[u]);
  }
  for (; d0 + 8 <= hd; d0 += 8) {
    __m256 acc = _mm256_setzero_ps();
    for (int64_t j = 0; j < n; ++j) acc = _mm256_fmadd_ps(_mm256_broadcast_ss(p + j), _mm256_loadu_ps(v + j * vs + d0), acc);
    _mm256_storeu_ps(out + d0, acc);
  }
  for (; d0 < hd; ++d0) {
    float acc = 0.0f;
    for (int64_t j = 0; j < n; ++j) acc += p[j] * v[j * vs + d0];
    out[d0] = acc;
  }
}

}  // namespace

void attention(const float* q, const float* k, const float* v, float* out, const AttentionParams& p, ThreadPool& pool) {
  const int hd = p.head_dim;
  const int64_t ks = p.kv_stride ? p.kv_stride : int64_t(p.n_head_kv) * hd;
  const int group = p.n_head / p.n_head_kv;
  const int64_t nt = p.n_tokens;
  // Task i -> head i / nt and a zigzag token order (0, nt-1, 1, nt-2, ...), so that any
  // contiguous range of tasks mixes short and long causal rows and threads stay balanced.
  pool.parallel_for(int64_t(p.n_head) * nt, 1, [&](int, int64_t begin, int64_t end) {
    thread_local std::vector<float> scores;
    scores.resize(size_t(p.n_past + nt));  // [n_kv]
    for (int64_t i = begin; i < end; ++i) {
      const int h = int(i / nt);
      const int64_t z = i % nt;
      const int64_t t = z % 2 == 0 ? z / 2 : nt - 1 - z / 2;
      const int64_t n_kv = p.n_past + t + 1;
      const int64_t kv_off = int64_t(h / group) * hd;
      const float* qh = q + (t * p.n_head + h) * hd;  // [head_dim]
      qk_scores(qh, k + kv_off, ks, n_kv, hd, p.scale, scores.data());
      softmax(scores.data(), n_kv);
      pv_accumulate(scores.data(), v + kv_off, ks, n_kv, hd, out + (t * p.n_head + h) * hd);
    }
  });
}

}  // namespace mf::ops
