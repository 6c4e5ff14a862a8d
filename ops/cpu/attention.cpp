// Causal GQA attention over a position-major KV cache.
// A task is (kv head, query token, key chunk): the G = n_head / n_head_kv query heads that
// share a kv head are processed together, so every K and V row loaded serves G queries.
// scores = scale * Q K^T over the visible keys, p = exp(scores - max), out = p V / sum(p).
// Decode has too few (kv head, token) pairs to feed the threads, so the key range is then
// split into chunks whose partial results (max, sum, unnormalised out) are merged after.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "ops/cpu/simd.h"
#include "ops/ops.h"

namespace mf::ops {

namespace {

constexpr int kMaxTileQueries = 3;  // queries per register tile (3 x 4 accumulators)
constexpr int64_t kSplitTasks = 8;  // decode: split keys until there are this many tasks

// s[g][j] = scale * dot(q[g], k[j]) for j < n, NQ queries against 4 keys at a time.
template <int NQ>
void qk_tile(const float* const* q, const float* k, int64_t ks, int64_t n, int hd, float scale, float* const* s) {
  const int hd8 = hd & ~7;
  int64_t j = 0;
  for (; j + 4 <= n; j += 4) {
    const float* kj = k + j * ks;
    __m256 acc[NQ][4];
#pragma GCC unroll 4
    for (int g = 0; g < NQ; ++g)
#pragma GCC unroll 4
      for (int u = 0; u < 4; ++u) acc[g][u] = _mm256_setzero_ps();
    for (int d = 0; d < hd8; d += 8) {
      __m256 kv[4];
#pragma GCC unroll 4
      for (int u = 0; u < 4; ++u) kv[u] = _mm256_loadu_ps(kj + u * ks + d);
#pragma GCC unroll 4
      for (int g = 0; g < NQ; ++g) {
        const __m256 qv = _mm256_loadu_ps(q[g] + d);
#pragma GCC unroll 4
        for (int u = 0; u < 4; ++u) acc[g][u] = _mm256_fmadd_ps(qv, kv[u], acc[g][u]);
      }
    }
#pragma GCC unroll 4
    for (int g = 0; g < NQ; ++g) {
      alignas(16) float t[4];
      _mm_store_ps(t, simd::hsum4(acc[g][0], acc[g][1], acc[g][2], acc[g][3]));
      for (int d = hd8; d < hd; ++d)
        for (int u = 0; u < 4; ++u) t[u] += q[g][d] * kj[u * ks + d];
      for (int u = 0; u < 4; ++u) s[g][j + u] = t[u] * scale;
    }
  }
  for (; j < n; ++j) {
    const float* kj = k + j * ks;
    for (int g = 0; g < NQ; ++g) {
      __m256 a = _mm256_setzero_ps();
      for (int d = 0; d < hd8; d += 8) a = _mm256_fmadd_ps(_mm256_loadu_ps(q[g] + d), _mm256_loadu_ps(kj + d), a);
      float t = simd::hsum(a);
      for (int d = hd8; d < hd; ++d) t += q[g][d] * kj[d];
      s[g][j] = t * scale;
    }
  }
}

// out[g][d] = mul[g] * sum_j p[g][j] v[j][d], NQ queries x 32 dims per register tile.
template <int NQ>
void pv_tile(const float* const* p, const float* v, int64_t vs, int64_t n, int hd, const float* mul, float* const* out) {
  int d0 = 0;
  for (; d0 + 32 <= hd; d0 += 32) {
    __m256 acc[NQ][4];
#pragma GCC unroll 4
    for (int g = 0; g < NQ; ++g)
#pragma GCC unroll 4
      for (int u = 0; u < 4; ++u) acc[g][u] = _mm256_setzero_ps();
    for (int64_t j = 0; j < n; ++j) {
      const float* vj = v + j * vs + d0;
      __m256 vv[4];
#pragma GCC unroll 4
      for (int u = 0; u < 4; ++u) vv[u] = _mm256_loadu_ps(vj + 8 * u);
#pragma GCC unroll 4
      for (int g = 0; g < NQ; ++g) {
        const __m256 pg = _mm256_broadcast_ss(p[g] + j);
#pragma GCC unroll 4
        for (int u = 0; u < 4; ++u) acc[g][u] = _mm256_fmadd_ps(pg, vv[u], acc[g][u]);
      }
    }
#pragma GCC unroll 4
    for (int g = 0; g < NQ; ++g) {
      const __m256 m = _mm256_set1_ps(mul[g]);
#pragma GCC unroll 4
      for (int u = 0; u < 4; ++u) _mm256_storeu_ps(out[g] + d0 + 8 * u, _mm256_mul_ps(acc[g][u], m));
    }
  }
  for (; d0 + 8 <= hd; d0 += 8) {
    for (int g = 0; g < NQ; ++g) {
      __m256 acc = _mm256_setzero_ps();
      for (int64_t j = 0; j < n; ++j)
        acc = _mm256_fmadd_ps(_mm256_broadcast_ss(p[g] + j), _mm256_loadu_ps(v + j * vs + d0), acc);
      _mm256_storeu_ps(out[g] + d0, _mm256_mul_ps(acc, _mm256_set1_ps(mul[g])));
    }
  }
  for (; d0 < hd; ++d0) {
    for (int g = 0; g < NQ; ++g) {
      float acc = 0.0f;
      for (int64_t j = 0; j < n; ++j) acc += p[g][j] * v[j * vs + d0];
      out[g][d0] = acc * mul[g];
    }
  }
}

}  // namespace

void attention(const float* q, const float* k, const float* v, float* out, const AttentionParams& p, ThreadPool& pool) {
  const int hd = p.head_dim;
  const int64_t ks = p.kv_stride ? p.kv_stride : int64_t(p.n_head_kv) * hd;
  const int G = p.n_head / p.n_head_kv;
  const int64_t nt = p.n_tokens;
  const int64_t pairs = int64_t(p.n_head_kv) * nt;
  // Key chunks per (kv head, token): about kSplitTasks tasks, chunks of >= 64 keys. Not tied
  // to the thread count, so results do not depend on it.
  const int64_t want = (kSplitTasks + pairs - 1) / pairs;
  // Every query sees at least this many keys, so no chunk is empty.
  const int64_t min_keys = p.window > 0 ? std::min<int64_t>(p.window, p.n_past + 1) : p.n_past + 1;
  const int64_t n_split = std::max<int64_t>(1, std::min(want, min_keys / 64));
  // Partial results of split tasks: [task, G] maxima and sums, [task, G, hd] outputs. The
  // caller's buffers, bound by reference (a thread_local named in the lambda would be the worker's).
  thread_local std::vector<float> caller_ml, caller_o;
  std::vector<float>& part_ml = caller_ml;
  std::vector<float>& part_o = caller_o;
  if (n_split > 1) {
    part_ml.resize(size_t(pairs * n_split * G * 2));
    part_o.resize(size_t(pairs * n_split * G * hd));
  }

  // Task i -> kv head, zigzag token order (0, nt-1, 1, nt-2, ...) so that any contiguous
  // range of tasks mixes short and long causal rows, then key chunk.
  pool.parallel_for(pairs * n_split, 1, [&](int, int64_t begin, int64_t end) {
    thread_local std::vector<float> scores;
    for (int64_t task = begin; task < end; ++task) {
      const int64_t pair = task / n_split, chunk = task % n_split;
      const int hk = int(pair / nt);
      const int64_t z = pair % nt;
      const int64_t t = z % 2 == 0 ? z / 2 : nt - 1 - z / 2;
      const int64_t end = p.n_past + t + 1;  // causal: positions ..n_past+t
      const int64_t lo = p.window > 0 ? std::max<int64_t>(0, end - p.window) : 0;
      const int64_t n_kv = end - lo;  // keys lo..end-1
      const int64_t j0 = lo + n_kv * chunk / n_split, j1 = lo + n_kv * (chunk + 1) / n_split, n = j1 - j0;
      const float* kh = k + j0 * ks + int64_t(hk) * hd;
      const float* vh = v + j0 * ks + int64_t(hk) * hd;
      if (scores.size() < size_t(G * n)) scores.resize(size_t(G * n));

      for (int g0 = 0; g0 < G; g0 += kMaxTileQueries) {
        const int nq = std::min(kMaxTileQueries, G - g0);
        const float* qg[kMaxTileQueries];
        float* sg[kMaxTileQueries];
        float* og[kMaxTileQueries];
        float mul[kMaxTileQueries];
        for (int i = 0; i < nq; ++i) {
          const int h = hk * G + g0 + i;
          qg[i] = q + (t * p.n_head + h) * hd;  // [head_dim]
          sg[i] = scores.data() + (g0 + i) * n;
          og[i] = n_split > 1 ? part_o.data() + (task * G + g0 + i) * hd : out + (t * p.n_head + h) * hd;
        }
        switch (nq) {
          case 3: qk_tile<3>(qg, kh, ks, n, hd, p.scale, sg); break;
          case 2: qk_tile<2>(qg, kh, ks, n, hd, p.scale, sg); break;
          default: qk_tile<1>(qg, kh, ks, n, hd, p.scale, sg); break;
        }
        for (int i = 0; i < nq; ++i) {
          const float m = simd::max_of(sg[i], n);
          const float sum = simd::exp_sum(sg[i], n, m);
          if (n_split > 1) {
            part_ml[size_t((task * G + g0 + i) * 2)] = m;
            part_ml[size_t((task * G + g0 + i) * 2 + 1)] = sum;
            mul[i] = 1.0f;
          } else {
            mul[i] = 1.0f / sum;
          }
        }
        switch (nq) {
          case 3: pv_tile<3>(sg, vh, ks, n, hd, mul, og); break;
          case 2: pv_tile<2>(sg, vh, ks, n, hd, mul, og); break;
          default: pv_tile<1>(sg, vh, ks, n, hd, mul, og); break;
        }
      }
    }
  });

  if (n_split == 1) return;
  // Merge chunks: out = sum_c e^(m_c - M) o_c / sum_c e^(m_c - M) l_c with M = max_c m_c.
  for (int64_t pair = 0; pair < pairs; ++pair) {
    const int hk = int(pair / nt);
    const int64_t z = pair % nt;
    const int64_t t = z % 2 == 0 ? z / 2 : nt - 1 - z / 2;
    for (int g = 0; g < G; ++g) {
      float M = -INFINITY;
      for (int64_t c = 0; c < n_split; ++c) M = std::fmax(M, part_ml[size_t(((pair * n_split + c) * G + g) * 2)]);
      float L = 0.0f;
      float* o = out + (t * p.n_head + hk * G + g) * hd;  // [head_dim]
      std::fill(o, o + hd, 0.0f);
      for (int64_t c = 0; c < n_split; ++c) {
        const int64_t i = (pair * n_split + c) * G + g;
        const float w = std::exp(part_ml[size_t(i * 2)] - M);
        L += w * part_ml[size_t(i * 2 + 1)];
        const float* oc = part_o.data() + i * hd;
        for (int d = 0; d < hd; ++d) o[d] += w * oc[d];
      }
      const float inv = 1.0f / L;
      for (int d = 0; d < hd; ++d) o[d] *= inv;
    }
  }
}

}  // namespace mf::ops
