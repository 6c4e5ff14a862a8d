// Causal GQA attention: the reference against a direct formula on a tiny case, then the
// fast path against the reference over head ratios 1, 3, 4, n_past 0 and > 0, strides
// and thread counts. Tolerance: |a - ref| <= 1e-5 + 1e-4 |ref| (values in [-1, 1)).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "ops/ops.h"
#include "test_util.h"

namespace mf {
namespace {

ThreadPool& pool(int n) {
  static std::unique_ptr<ThreadPool> pools[4];
  if (!pools[n]) pools[n] = std::make_unique<ThreadPool>(n);
  return *pools[n];
}

TEST(OpsAttention, ReferenceMatchesDirectFormula) {
  // 2 query heads sharing 1 kv head, head_dim 2, 2 cached positions + 2 new tokens.
  AttentionParams p;
  p.n_tokens = 2, p.n_past = 2, p.n_head = 2, p.n_head_kv = 1, p.head_dim = 2, p.scale = 0.7f;
  const int n_kv = 4;
  const auto q = test::random_floats(2 * 2 * 2, 1);  // [n_tokens, n_head, head_dim]
  const auto k = test::random_floats(n_kv * 2, 2);   // [n_kv, head_dim]
  const auto v = test::random_floats(n_kv * 2, 3);
  std::vector<float> out(8);
  ref::attention(q.data(), k.data(), v.data(), out.data(), p);
  for (int t = 0; t < 2; ++t) {
    for (int h = 0; h < 2; ++h) {
      // softmax over positions j <= n_past + t of scale * q.k_j, then the weighted sum of v_j.
      const float* qh = &q[size_t((t * 2 + h) * 2)];
      double w[4], z = 0.0;
      for (int j = 0; j <= 2 + t; ++j) {
        w[j] = std::exp(0.7 * (double(qh[0]) * k[size_t(j * 2)] + double(qh[1]) * k[size_t(j * 2 + 1)]));
        z += w[j];
      }
      for (int d = 0; d < 2; ++d) {
        double o = 0.0;
        for (int j = 0; j <= 2 + t; ++j) o += w[j] / z * v[size_t(j * 2 + d)];
        EXPECT_NEAR(out[size_t((t * 2 + h) * 2 + d)], o, 1e-6) << t << " " << h << " " << d;
      }
    }
  }
}

TEST(OpsAttention, FirstTokenCopiesV) {
  // With a single visible position the output is that position's v, whatever q is.
  AttentionParams p;
  p.n_head = 4, p.n_head_kv = 2, p.head_dim = 8, p.scale = 0.35f;
  const auto q = test::random_floats(32, 4), k = test::random_floats(16, 5), v = test::random_floats(16, 6);
  std::vector<float> out(32);
  ops::attention(q.data(), k.data(), v.data(), out.data(), p, pool(2));
  for (int h = 0; h < 4; ++h)
    for (int d = 0; d < 8; ++d) EXPECT_FLOAT_EQ(out[size_t(h * 8 + d)], v[size_t(h / 2 * 8 + d)]);
}

TEST(OpsAttention, FastMatchesReference) {
  struct Heads { int n_head, n_head_kv; };
  for (Heads hs : {Heads{4, 4}, Heads{9, 3}, Heads{8, 2}}) {
    for (int hd : {8, 20, 64, 128}) {
      for (int64_t n_past : {0, 7, 100, 300}) {  // 300: decode splits the keys into chunks
        for (int64_t nt : {1, 5, 33}) {
          for (int64_t extra_stride : {0, 8}) {
            AttentionParams p;
            p.n_tokens = nt, p.n_past = n_past, p.n_head = hs.n_head, p.n_head_kv = hs.n_head_kv, p.head_dim = hd;
            p.scale = 1.0f / std::sqrt(float(hd));
            p.kv_stride = extra_stride ? int64_t(hs.n_head_kv) * hd + extra_stride : 0;
            const int64_t ks = p.kv_stride ? p.kv_stride : int64_t(hs.n_head_kv) * hd;
            const int64_t n_kv = n_past + nt;
            const auto q = test::random_floats(size_t(nt * hs.n_head * hd), uint32_t(hd + nt));
            const auto k = test::random_floats(size_t(n_kv * ks), uint32_t(n_kv), -2.0f, 2.0f);
            const auto v = test::random_floats(size_t(n_kv * ks), uint32_t(n_kv + 1));
            std::vector<float> want(q.size());
            ref::attention(q.data(), k.data(), v.data(), want.data(), p);
            for (int threads : {1, 2, 3}) {
              std::vector<float> got(q.size(), NAN);
              ops::attention(q.data(), k.data(), v.data(), got.data(), p, pool(threads));
              int bad = 0;
              for (size_t i = 0; i < got.size(); ++i) {
                if (!(std::fabs(got[i] - want[i]) <= 1e-5f + 1e-4f * std::fabs(want[i])) && ++bad <= 3)
                  ADD_FAILURE() << "heads " << hs.n_head << "/" << hs.n_head_kv << " hd=" << hd << " n_past=" << n_past
                                << " nt=" << nt << " stride+" << extra_stride << " threads=" << threads << " i=" << i
                                << " got " << got[i] << " want " << want[i];
              }
              ASSERT_EQ(bad, 0);
            }
          }
        }
      }
    }
  }
}

TEST(OpsAttention, SlidingWindowIsFullAttentionOverTheLastKeys) {
  // With a window W, query t (position n_past + t) equals plain attention over only the keys
  // max(0, n_past + t + 1 - W) .. n_past + t.
  AttentionParams p;
  p.n_tokens = 4, p.n_past = 5, p.n_head = 4, p.n_head_kv = 2, p.head_dim = 8, p.scale = 0.35f, p.window = 3;
  const int64_t ks = 2 * 8, n_kv = 9;
  const auto q = test::random_floats(4 * 4 * 8, 7), k = test::random_floats(size_t(n_kv * ks), 8), v = test::random_floats(size_t(n_kv * ks), 9);
  std::vector<float> got(q.size());
  ref::attention(q.data(), k.data(), v.data(), got.data(), p);
  for (int64_t t = 0; t < 4; ++t) {
    const int64_t end = p.n_past + t + 1, lo = std::max<int64_t>(0, end - p.window);
    AttentionParams one = p;
    one.window = 0, one.n_tokens = 1, one.n_past = end - lo - 1;
    std::vector<float> want(4 * 8);
    ref::attention(q.data() + t * 32, k.data() + lo * ks, v.data() + lo * ks, want.data(), one);
    for (int i = 0; i < 32; ++i) EXPECT_NEAR(got[size_t(t * 32 + i)], want[size_t(i)], 1e-6) << t << " " << i;
  }
}

TEST(OpsAttention, FastMatchesReferenceWithSlidingWindows) {
  for (int64_t window : {1, 3, 64, 200}) {
    for (int64_t n_past : {0, 7, 100, 300}) {
      for (int64_t nt : {1, 5, 33}) {
        AttentionParams p;
        p.n_tokens = nt, p.n_past = n_past, p.n_head = 8, p.n_head_kv = 2, p.head_dim = 20, p.window = window;
        p.scale = 1.0f / std::sqrt(20.0f);
        const int64_t ks = 2 * 20, n_kv = n_past + nt;
        const auto q = test::random_floats(size_t(nt * 8 * 20), uint32_t(nt + window));
        const auto k = test::random_floats(size_t(n_kv * ks), uint32_t(n_kv), -2.0f, 2.0f);
        const auto v = test::random_floats(size_t(n_kv * ks), uint32_t(n_kv + 1));
        std::vector<float> want(q.size());
        ref::attention(q.data(), k.data(), v.data(), want.data(), p);
        for (int threads : {1, 2}) {
          std::vector<float> got(q.size(), NAN);
          ops::attention(q.data(), k.data(), v.data(), got.data(), p, pool(threads));
          for (size_t i = 0; i < got.size(); ++i)
            ASSERT_LE(std::fabs(got[i] - want[i]), 1e-5f + 1e-4f * std::fabs(want[i]))
                << "window " << window << " n_past " << n_past << " nt " << nt << " threads " << threads << " i " << i;
        }
      }
    }
  }
}

}  // namespace
}  // namespace mf
