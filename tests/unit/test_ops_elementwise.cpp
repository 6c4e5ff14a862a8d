// RMSNorm, RoPE (both pair layouts), softmax, argmax and SwiGLU: fast paths against the
// references on odd sizes, plus hand-checked values.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numbers>
#include <string>
#include <vector>

#include "ops/ops.h"
#include "test_util.h"

namespace mf {
namespace {

// Every element within |a - ref| <= atol + rtol |ref|.
void expect_close(const std::vector<float>& a, const std::vector<float>& ref, float atol, float rtol,
                  const std::string& what) {
  ASSERT_EQ(a.size(), ref.size());
  int bad = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!(std::fabs(a[i] - ref[i]) <= atol + rtol * std::fabs(ref[i])) && ++bad <= 3)
      ADD_FAILURE() << what << " i=" << i << " got " << a[i] << " want " << ref[i];
  }
}

// Tolerance: atol 1e-6, rtol 1e-5 (f32 sum of squares in a different order).
TEST(OpsRmsNorm, MatchesReference) {
  for (int64_t n : {1, 7, 8, 64, 100, 576, 1001}) {
    const int64_t nt = 3;
    const auto x = test::random_floats(size_t(nt * n), uint32_t(n), -3.0f, 3.0f);
    const auto w = test::random_floats(size_t(n), uint32_t(n + 1), 0.5f, 1.5f);
    std::vector<float> want(x.size()), got(x.size()), inplace = x;
    ref::rmsnorm(x.data(), w.data(), want.data(), nt, n, 1e-5f);
    ops::rmsnorm(x.data(), w.data(), got.data(), nt, n, 1e-5f);
    expect_close(got, want, 1e-6f, 1e-5f, "rmsnorm n=" + std::to_string(n));
    ops::rmsnorm(inplace.data(), w.data(), inplace.data(), nt, n, 1e-5f);  // x == y allowed
    expect_close(inplace, want, 1e-6f, 1e-5f, "rmsnorm in place n=" + std::to_string(n));
  }
}

TEST(OpsRmsNorm, KnownValues) {
  // x = (3, 4): mean square 12.5, so y = x / sqrt(12.5) * w.
  const float x[2] = {3.0f, 4.0f}, w[2] = {1.0f, 2.0f};
  float y[2];
  ref::rmsnorm(x, w, y, 1, 2, 0.0f);
  EXPECT_NEAR(y[0], 3.0 / std::sqrt(12.5), 1e-6);
  EXPECT_NEAR(y[1], 8.0 / std::sqrt(12.5), 1e-6);
  ops::rmsnorm(x, w, y, 1, 2, 0.0f);
  EXPECT_NEAR(y[1], 8.0 / std::sqrt(12.5), 1e-6);
}

std::vector<float> inv_freqs(int head_dim, float theta = 10000.0f) {
  std::vector<float> f(size_t(head_dim / 2));
  for (int i = 0; i < head_dim / 2; ++i) f[size_t(i)] = std::pow(theta, -2.0f * float(i) / float(head_dim));
  return f;
}

// Tolerance: atol 1e-5, rtol 1e-5 (same cos/sin; only the FMA contraction may differ).
TEST(OpsRope, MatchesReferenceBothLayouts) {
  for (bool neox : {true, false}) {
    for (int hd : {2, 8, 20, 64, 80, 128}) {
      const int n_head = 3;
      const int64_t nt = 5;
      const int32_t pos[5] = {0, 1, 17, 511, 9999};
      const auto freq = inv_freqs(hd);
      auto want = test::random_floats(size_t(nt * n_head * hd), uint32_t(hd));
      auto got = want;
      ref::rope(want.data(), pos, nt, n_head, hd, freq.data(), neox);
      ops::rope(got.data(), pos, nt, n_head, hd, freq.data(), neox);
      expect_close(got, want, 1e-5f, 1e-5f, std::string(neox ? "neox" : "gguf") + " hd=" + std::to_string(hd));
    }
  }
}

TEST(OpsRope, KnownRotation) {
  // head_dim 4, pos 1, angles pi/2 and pi: (a, b) -> (-b, a) and (a, b) -> (-a, -b).
  const float pi = std::numbers::pi_v<float>;
  const float freq[2] = {pi / 2, pi};
  const int32_t pos1 = 1, pos0 = 0;
  // neox pairs (0, 2) and (1, 3): (1, 3) -> (-3, 1), (2, 4) -> (-2, -4).
  const std::vector<float> neox_want = {-3.0f, -2.0f, 1.0f, -4.0f};
  // adjacent pairs (0, 1) and (2, 3): (1, 2) -> (-2, 1), (3, 4) -> (-3, -4).
  const std::vector<float> gguf_want = {-2.0f, 1.0f, -3.0f, -4.0f};
  for (bool neox : {true, false}) {
    std::vector<float> a = {1, 2, 3, 4}, b = a, id = a;
    ref::rope(a.data(), &pos1, 1, 1, 4, freq, neox);
    ops::rope(b.data(), &pos1, 1, 1, 4, freq, neox);
    expect_close(a, neox ? neox_want : gguf_want, 1e-6f, 0.0f, "ref known rotation");
    expect_close(b, neox ? neox_want : gguf_want, 1e-6f, 0.0f, "ops known rotation");
    ops::rope(id.data(), &pos0, 1, 1, 4, freq, neox);
    expect_close(id, {1, 2, 3, 4}, 0.0f, 0.0f, "position 0 is the identity");
  }
}

// Tolerance: atol 1e-7, rtol 1e-5 (polynomial exp ~2e-7 relative, different summation order).
TEST(OpsArgmax, MatchesReferenceAndStdMaxElement) {
  for (int64_t n : {1, 2, 7, 8, 9, 31, 1000, 8192, 49153}) {
    auto x = test::random_floats(size_t(n), uint32_t(n) + 7, -5.0f, 5.0f);
    EXPECT_EQ(ops::argmax(x.data(), n), ref::argmax(x.data(), n)) << n;
    EXPECT_EQ(ref::argmax(x.data(), n), std::max_element(x.begin(), x.end()) - x.begin()) << n;
    // Ties go to the first position, wherever the maximum sits (head, vector body, tail);
    // the second copy is 9 further on, in another 8-wide vector.
    for (int64_t at : {int64_t(0), n / 2, n - 1}) {
      auto y = x;
      y[at] = 100.0f;
      y[std::min(at + 9, n - 1)] = 100.0f;
      EXPECT_EQ(ops::argmax(y.data(), n), at) << n << " at " << at;
      EXPECT_EQ(ref::argmax(y.data(), n), at) << n << " at " << at;
    }
  }
  // NaNs are ignored; all-NaN and empty inputs give 0.
  std::vector<float> nan = {NAN, 1.0f, NAN, 3.0f, 2.0f, NAN, NAN, NAN, NAN, -1.0f};
  EXPECT_EQ(ops::argmax(nan.data(), 10), 3);
  EXPECT_EQ(ref::argmax(nan.data(), 10), 3);
  std::vector<float> all_nan(11, NAN);
  EXPECT_EQ(ops::argmax(all_nan.data(), 11), 0);
  EXPECT_EQ(ops::argmax(nan.data(), 0), 0);
}

TEST(OpsSoftmax, MatchesReference) {
  for (int64_t n : {1, 2, 5, 8, 9, 33, 1000, 4097}) {
    for (float range : {1.0f, 20.0f, 1e4f}) {  // 1e4: most entries underflow to 0
      const auto x = test::random_floats(size_t(n), uint32_t(n), -range, range);
      auto want = x, got = x;
      ref::softmax(want.data(), n);
      ops::softmax(got.data(), n);
      expect_close(got, want, 1e-7f, 1e-5f, "softmax n=" + std::to_string(n));
      double sum = 0.0;
      for (float v : got) sum += v;
      EXPECT_NEAR(sum, 1.0, 1e-5);
    }
  }
  std::vector<float> big = {1000.0f, 1000.0f, -1000.0f};  // no overflow: max is subtracted first
  ops::softmax(big.data(), 3);
  expect_close(big, {0.5f, 0.5f, 0.0f}, 1e-7f, 0.0f, "softmax large inputs");
}

// Tolerance: atol 1e-7, rtol 1e-5.
TEST(OpsSwiglu, MatchesReference) {
  for (int64_t n : {1, 7, 8, 100, 1537}) {
    const auto g = test::random_floats(size_t(n), uint32_t(n), -20.0f, 20.0f);
    const auto u = test::random_floats(size_t(n), uint32_t(n + 9), -2.0f, 2.0f);
    std::vector<float> want(static_cast<size_t>(n)), got(static_cast<size_t>(n));
    ref::swiglu(g.data(), u.data(), want.data(), n);
    ops::swiglu(g.data(), u.data(), got.data(), n);
    expect_close(got, want, 1e-7f, 1e-5f, "swiglu n=" + std::to_string(n));
  }
  const std::vector<float> g = {0.0f, 1.0f, -1.0f, 100.0f, -100.0f, 0.5f, 2.0f, -3.0f}, u(8, 2.0f);
  std::vector<float> out(8), want(8);
  for (size_t i = 0; i < 8; ++i) want[i] = float(2.0 * g[i] / (1.0 + std::exp(-double(g[i]))));
  ops::swiglu(g.data(), u.data(), out.data(), 8);
  expect_close(out, want, 1e-7f, 1e-6f, "swiglu known values");
}

// Tolerance: atol 1e-6, rtol 1e-5 (the reference is in double; e^(-2z) form vs tanh).
TEST(OpsGeglu, MatchesReference) {
  for (int64_t n : {1, 7, 8, 100, 2049}) {
    const auto g = test::random_floats(size_t(n), uint32_t(n + 3), -12.0f, 12.0f);
    const auto u = test::random_floats(size_t(n), uint32_t(n + 11), -2.0f, 2.0f);
    std::vector<float> want(static_cast<size_t>(n)), got(static_cast<size_t>(n));
    ref::geglu(g.data(), u.data(), want.data(), n);
    ops::geglu(g.data(), u.data(), got.data(), n);
    expect_close(got, want, 1e-6f, 1e-5f, "geglu n=" + std::to_string(n));
  }
  // Known values of gelu_tanh (PyTorch's gelu(approximate='tanh')), up = 1.
  const std::vector<float> g = {0.0f, 1.0f, -1.0f, 3.0f, -3.0f, 0.5f, 100.0f, -100.0f}, u(8, 1.0f);
  const std::vector<float> want = {0.0f, 0.8411920071f, -0.1588079929f, 2.9963627f, -0.0036373f, 0.3457140f, 100.0f, 0.0f};
  std::vector<float> out(8);
  ops::geglu(g.data(), u.data(), out.data(), 8);
  expect_close(out, want, 1e-6f, 1e-5f, "geglu known values");
}

}  // namespace
}  // namespace mf
