// Integer-dot matmuls of q4_1, q5_0, q5_1 and the k-quants q2_K..q6_K against the scalar
// references: activation quantisers bit for bit, ref::detail::vec_dot (GGML's vec_dot
// arithmetic) against a double dot of the dequantised operands, the fast ops::matmul /
// matmul_group against both (odd row counts, 1..9 and 130 tokens), fast dequantisation
// bit for bit, and the plain ref::matmul (unquantised x) within quantisation noise.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/half.h"
#include "ops/cpu/quant_acts.h"
#include "ops/ops.h"
#include "ops/reference/quant_dot.h"
#include "test_util.h"

namespace mf {
namespace {

using ref::detail::BlockQ8_1;
using ref::detail::BlockQ8_K;

ThreadPool& pool() {
  static ThreadPool p(2);
  return p;
}

const DType kNewTypes[] = {DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q2_K,
                           DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K};

// Byte offsets of a block's fp16 scale fields (d, and dmin/m where present).
std::vector<size_t> half_fields(DType t) {
  switch (t) {
    case DType::Q4_1: case DType::Q5_1: case DType::Q4_K: case DType::Q5_K: return {0, 2};
    case DType::Q5_0: case DType::Q8_0: case DType::Q4_0: return {0};
    case DType::Q2_K: return {offsetof(BlockQ2_K, d), offsetof(BlockQ2_K, dmin)};
    case DType::Q3_K: return {offsetof(BlockQ3_K, d)};
    case DType::Q6_K: return {offsetof(BlockQ6_K, d)};
    default: return {};
  }
}

// Random rows of type t: random code and scale bytes, finite random fp16 scales.
std::vector<uint8_t> random_rows(DType t, int64_t rows, int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> w(row_bytes(t, n) * size_t(rows));
  for (auto& b : w) b = uint8_t(rng());
  std::uniform_real_distribution<float> scale(-0.02f, 0.02f);
  for (size_t blk = 0; blk < w.size() / block_bytes(t); ++blk)
    for (size_t off : half_fields(t)) {
      const uint16_t h = f32_to_fp16(scale(rng));
      std::memcpy(&w[blk * block_bytes(t) + off], &h, 2);
    }
  return w;
}

// x with occasional outliers and some exact zeros/ties, as activations.
std::vector<float> random_acts(int64_t n_tokens, int64_t n, uint32_t seed) {
  auto x = test::random_floats(size_t(n_tokens * n), seed, -2.0f, 2.0f);
  for (size_t i = 0; i < x.size(); i += 37) x[i] *= 8.0f;
  for (size_t i = 5; i < x.size(); i += 101) x[i] = 0.0f;
  return x;
}

TEST(OpsKQuant, ActivationsQ8_KMatchReference) {
  for (int64_t n : {256, 768}) {
    auto x = random_acts(3, n, 11);
    std::fill(x.begin() + n, x.begin() + n + 256, 0.0f);  // an all-zero block
    x[size_t(2 * n + 3)] = -9.0f, x[size_t(2 * n + 7)] = 9.0f;  // equal magnitudes: the first sets the sign
    ops::detail::QuantizedActs xa;
    ops::detail::prepare_acts(3, n, xa, true);
    ops::detail::quantize_acts(x.data(), 0, 3, xa);
    const int64_t nb = n / 256;
    for (int64_t t = 0; t < 3; ++t) {
      std::vector<BlockQ8_K> r(static_cast<size_t>(nb));
      ref::detail::quantize_row_q8_K(x.data() + t * n, r.data(), n);
      for (int64_t b = 0; b < nb; ++b) {
        const int64_t i = t * nb + b;
        EXPECT_EQ(xa.d[i], r[size_t(b)].d) << t << " " << b;
        EXPECT_EQ(std::memcmp(xa.qs + i * 256, r[size_t(b)].qs, 256), 0) << t << " " << b;
        EXPECT_EQ(std::memcmp(xa.bsums + i * 16, r[size_t(b)].bsums, 32), 0) << t << " " << b;
      }
    }
  }
}

TEST(OpsKQuant, ActivationsQ8_1MatchReference) {
  const int64_t n = 576;
  const auto x = random_acts(2, n, 12);
  ops::detail::QuantizedActs xa;
  ops::detail::prepare_acts(2, n, xa);
  ops::detail::quantize_acts(x.data(), 0, 2, xa);
  std::vector<BlockQ8_1> r(static_cast<size_t>(n / 32));
  for (int64_t t = 0; t < 2; ++t) {
    ref::detail::quantize_row_q8_1(x.data() + t * n, r.data(), n);
    for (int64_t b = 0; b < n / 32; ++b) {
      const int64_t i = t * (n / 32) + b;
      EXPECT_EQ(xa.d[i], fp16_to_f32(r[size_t(b)].d));
      EXPECT_EQ(xa.s[i], fp16_to_f32(r[size_t(b)].s));
      EXPECT_EQ(std::memcmp(xa.qs + i * 32, r[size_t(b)].qs, 32), 0);
    }
  }
}

TEST(OpsKQuant, Q8_KKnownBlock) {
  // -127 is the first value of largest magnitude: iscale = -127 / -127 = 1, so codes are
  // the values rounded half to even (GGML's nearest_int), and d = 1.
  std::vector<float> x(256, 0.0f);
  x[0] = 1.0f, x[1] = -127.0f, x[2] = 2.5f, x[3] = 3.5f, x[4] = -2.5f, x[17] = 127.0f;
  BlockQ8_K b;
  ref::detail::quantize_row_q8_K(x.data(), &b, 256);
  EXPECT_EQ(b.d, 1.0f);
  const int expect[5] = {1, -127, 2, 4, -2};
  for (int j = 0; j < 5; ++j) EXPECT_EQ(b.qs[j], expect[j]) << j;
  EXPECT_EQ(b.qs[17], 127);
  EXPECT_EQ(b.bsums[0], 1 - 127 + 2 + 4 - 2);
  EXPECT_EQ(b.bsums[1], 127);
  // The fast quantiser agrees.
  ops::detail::QuantizedActs xa;
  ops::detail::prepare_acts(1, 256, xa, true);
  ops::detail::quantize_acts(x.data(), 0, 1, xa);
  EXPECT_EQ(xa.d[0], 1.0f);
  EXPECT_EQ(std::memcmp(xa.qs, b.qs, 256), 0);
}

// The double dot of the dequantised operands, and sum |w x|: the scale of f32 rounding in
// any summation order. xq: n_tokens rows of acts_row_bytes(t, n) quantised activations.
// q8_1 carries s = fp16(d sum(qs)) for the minimum term, which is not exactly d_fp16 sum(qs)
// (GGML's approximation, kept by the kernels): for q4_1/q5_1 the minimum's term uses s.
struct Dots {
  std::vector<float> exact;  // [n_tokens, rows]
  std::vector<float> mag;    // [n_tokens, rows]
};

Dots dequant_dots(DType t, const std::vector<uint8_t>& w, int64_t rows, int64_t n, const std::vector<uint8_t>& xq,
                  int64_t n_tokens) {
  Dots d{std::vector<float>(size_t(n_tokens * rows)), std::vector<float>(size_t(n_tokens * rows))};
  const size_t xb = ref::detail::acts_row_bytes(t, n);
  const bool q8_1 = ref::detail::act_format(t) == ref::detail::ActFormat::Q8_1;
  std::vector<float> row(static_cast<size_t>(n)), xd(static_cast<size_t>(n));
  for (int64_t k = 0; k < n_tokens; ++k) {
    const uint8_t* xk = xq.data() + size_t(k) * xb;
    ref::detail::dequantize_acts(t, xk, xd.data(), n);
    for (int64_t r = 0; r < rows; ++r) {
      const uint8_t* wr = w.data() + r * row_bytes(t, n);
      ref::dequantize_row(t, wr, row.data(), n);
      double s = 0, m = 0;
      for (int64_t i = 0; i < n; ++i) {
        s += double(row[size_t(i)]) * xd[size_t(i)];
        m += std::fabs(double(row[size_t(i)]) * xd[size_t(i)]);
      }
      for (int64_t b = 0; q8_1 && b < n / 32; ++b) {  // replace m d sum(qs) by m s
        uint16_t mh;
        std::memcpy(&mh, wr + b * block_bytes(t) + 2, 2);
        const auto& xb1 = reinterpret_cast<const BlockQ8_1*>(xk)[b];
        int sum = 0;
        for (int j = 0; j < 32; ++j) sum += xb1.qs[j];
        s += double(fp16_to_f32(mh)) * (double(fp16_to_f32(xb1.s)) - double(fp16_to_f32(xb1.d)) * sum);
      }
      d.exact[size_t(k * rows + r)] = float(s), d.mag[size_t(k * rows + r)] = float(m);
    }
  }
  return d;
}

std::vector<int64_t> widths(DType t) {
  return is_kquant(t) ? std::vector<int64_t>{256, 512, 768} : std::vector<int64_t>{32, 96, 160, 576};
}

TEST(OpsKQuant, VecDotReferenceEqualsDequantisedDot) {
  for (DType t : kNewTypes) {
    for (int64_t n : widths(t)) {
      const int64_t rows = 5;
      const auto w = random_rows(t, rows, n, 21);
      const auto x = random_acts(1, n, 22);
      std::vector<uint8_t> xq(ref::detail::acts_row_bytes(t, n));
      ref::detail::quantize_acts(t, x.data(), xq.data(), n);
      const Dots d = dequant_dots(t, w, rows, n, xq, 1);
      for (int64_t r = 0; r < rows; ++r) {
        const float v = ref::detail::vec_dot(t, w.data() + r * row_bytes(t, n), xq.data(), n);
        EXPECT_NEAR(v, d.exact[size_t(r)], 2e-6f * d.mag[size_t(r)] + 1e-30f) << dtype_name(t) << " n=" << n << " r=" << r;
      }
    }
  }
}

// The fast matmul equals the reference vec_dot per (token, row) and the double dot of the
// dequantised operands, to f32 rounding (relative to sum |w x|: random scales make the
// sums cancel far more than real weights do).
TEST(OpsKQuant, MatmulMatchesReference) {
  for (DType t : kNewTypes) {
    for (int64_t n : widths(t)) {
      for (int64_t rows : {1, 3, 5, 17}) {
        const auto w = random_rows(t, rows, n, uint32_t(100 + rows + n));
        const auto view = make_view(t, {rows, n}, w.data());
        for (int64_t nt : {1, 2, 3, 4, 5, 6, 7, 8, 9, 130}) {
          if (nt == 130 && rows == 3) continue;  // keep the test short
          const auto x = random_acts(nt, n, uint32_t(nt));
          std::vector<float> y(static_cast<size_t>(nt * rows));
          ops::matmul(view, x.data(), y.data(), nt, pool());
          const size_t xb = ref::detail::acts_row_bytes(t, n);
          std::vector<uint8_t> xq(xb * size_t(nt));
          for (int64_t k = 0; k < nt; ++k) ref::detail::quantize_acts(t, x.data() + k * n, xq.data() + k * xb, n);
          const Dots d = dequant_dots(t, w, rows, n, xq, nt);
          int bad = 0;
          for (int64_t k = 0; k < nt; ++k)
            for (int64_t r = 0; r < rows; ++r) {
              const size_t i = size_t(k * rows + r);
              const float v = ref::detail::vec_dot(t, w.data() + r * row_bytes(t, n), xq.data() + k * xb, n);
              const float tol = 4e-6f * d.mag[i] + 1e-30f;
              if (!(std::fabs(y[i] - v) <= tol && std::fabs(y[i] - d.exact[i]) <= tol) && ++bad <= 3)
                ADD_FAILURE() << dtype_name(t) << " n=" << n << " rows=" << rows << " nt=" << nt << " t=" << k
                              << " r=" << r << " got " << y[i] << " vec_dot " << v << " exact " << d.exact[i]
                              << " sum|wx| " << d.mag[i];
            }
        }
      }
    }
  }
}

// Several weights of one type on one input (q/k/v, gate/up): identical to separate calls.
TEST(OpsKQuant, MatmulGroupEqualsSeparateCalls) {
  for (DType t : kNewTypes) {
    const int64_t n = is_kquant(t) ? 512 : 576;
    const int64_t rows[] = {256, 65, 81};
    std::vector<std::vector<uint8_t>> ws;
    std::vector<TensorView> views;
    for (int i = 0; i < 3; ++i) ws.push_back(random_rows(t, rows[i], n, uint32_t(7 + i)));
    for (int i = 0; i < 3; ++i) views.push_back(make_view(t, {rows[i], n}, ws[size_t(i)].data()));
    const TensorView* vp[] = {&views[0], &views[1], &views[2]};
    for (int64_t nt : {1, 2, 3, 4, 5}) {
      const auto x = random_acts(nt, n, uint32_t(40 + nt));
      std::vector<std::vector<float>> yg(3), ys(3);
      for (int i = 0; i < 3; ++i) yg[size_t(i)].resize(size_t(nt * rows[i])), ys[size_t(i)].resize(size_t(nt * rows[i]));
      float* yp[] = {yg[0].data(), yg[1].data(), yg[2].data()};
      ops::matmul_group(vp, x.data(), yp, nt, pool());
      for (int i = 0; i < 3; ++i) {
        ops::matmul(views[size_t(i)], x.data(), ys[size_t(i)].data(), nt, pool());
        EXPECT_EQ(yg[size_t(i)], ys[size_t(i)]) << dtype_name(t) << " nt=" << nt << " matrix " << i;
      }
    }
  }
  // Mixed types and widths fall back to separate calls.
  const auto w1 = random_rows(DType::Q4_K, 64, 512, 1), w2 = random_rows(DType::Q6_K, 48, 512, 2);
  const auto v1 = make_view(DType::Q4_K, {64, 512}, w1.data()), v2 = make_view(DType::Q6_K, {48, 512}, w2.data());
  const TensorView* vp[] = {&v1, &v2};
  const auto x = random_acts(2, 512, 3);
  std::vector<float> a(128), b(96), a2(128), b2(96);
  float* yp[] = {a.data(), b.data()};
  ops::matmul_group(vp, x.data(), yp, 2, pool());
  ops::matmul(v1, x.data(), a2.data(), 2, pool());
  ops::matmul(v2, x.data(), b2.data(), 2, pool());
  EXPECT_EQ(a, a2);
  EXPECT_EQ(b, b2);
}

// ref::matmul keeps x in f32: the integer kernels differ from it by activation quantisation
// only (8-bit codes: a few 1e-3 of the result's scale).
TEST(OpsKQuant, MatmulNearUnquantisedReference) {
  for (DType t : kNewTypes) {
    const int64_t n = is_kquant(t) ? 768 : 576, rows = 33, nt = 5;
    const auto w = random_rows(t, rows, n, 5);
    const auto view = make_view(t, {rows, n}, w.data());
    const auto x = test::random_floats(size_t(nt * n), 6);
    std::vector<float> y(static_cast<size_t>(nt * rows)), yr(size_t(nt * rows));
    ops::matmul(view, x.data(), y.data(), nt, pool());
    ref::matmul(view, x.data(), yr.data(), nt);
    double err = 0, norm = 0;
    for (size_t i = 0; i < y.size(); ++i) err += (y[i] - yr[i]) * double(y[i] - yr[i]), norm += double(yr[i]) * yr[i];
    EXPECT_LT(err / norm, 1e-4) << dtype_name(t);
  }
}

TEST(OpsKQuant, FastDequantizeBitIdentical) {
  for (DType t : kNewTypes) {
    const int64_t n = is_kquant(t) ? 1024 : 576;
    const auto w = random_rows(t, 1, n, 9);
    std::vector<float> a(static_cast<size_t>(n)), b(static_cast<size_t>(n));
    ref::dequantize_row(t, w.data(), a.data(), n);
    ops::dequantize_row(t, w.data(), b.data(), n);
    EXPECT_EQ(std::memcmp(a.data(), b.data(), size_t(n) * 4), 0) << dtype_name(t);
  }
}

}  // namespace
}  // namespace mf
