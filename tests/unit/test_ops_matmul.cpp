// Fast matmul against the scalar reference for every weight type, odd shapes (row and
// token tails of the 4x3 tiles, k tails) and thread counts 1, 2, 3.
//
// Tolerances, with x and w uniform in [-1, 1):
//  * f32/f16/bf16 (the fast path sees the same weights; only f32 accumulation order differs):
//    |a - ref| <= 1e-4 + 1e-4 |ref|.
//  * q8_0/q4_0 against ref::matmul on the q8_0 round trip of x (what the fast path multiplies):
//    |a - ref| <= 1e-4 + 1e-4 |ref|, i.e. equal up to f32 rounding.
//  * q8_0/q4_0 against ref::matmul on x itself: the activation quantisation error, judged
//    as normalised RMS error ||a - ref|| / ||ref|| <= 1e-2 (measured ~4e-3 for q8_0 codes).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
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

// Number of elements outside |a - ref| <= atol + rtol |ref|; reports the first few.
int count_mismatches(const std::vector<float>& a, const std::vector<float>& ref, float atol, float rtol,
                     const std::string& what) {
  int bad = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const float err = std::fabs(a[i] - ref[i]);
    if (!(err <= atol + rtol * std::fabs(ref[i]))) {
      if (++bad <= 3) ADD_FAILURE() << what << " i=" << i << " got " << a[i] << " want " << ref[i];
    }
  }
  return bad;
}

double normalised_rmse(const std::vector<float>& a, const std::vector<float>& ref) {
  double se = 0.0, sr = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    se += double(a[i] - ref[i]) * (a[i] - ref[i]);
    sr += double(ref[i]) * ref[i];
  }
  return std::sqrt(se / sr);
}

bool is_quant(DType t) { return t == DType::Q8_0 || t == DType::Q4_0; }

// The rows of x after a q8_0 round trip: the activations the quantised fast paths really use.
std::vector<float> q8_round_trip(const std::vector<float>& x, int64_t n_tokens, int64_t n_in) {
  std::vector<float> out(x.size());
  std::vector<BlockQ8_0> q(size_t(n_in / 32));
  for (int64_t t = 0; t < n_tokens; ++t) {
    ref::quantize_row(DType::Q8_0, x.data() + t * n_in, q.data(), n_in);
    ref::dequantize_row(DType::Q8_0, q.data(), out.data() + t * n_in, n_in);
  }
  return out;
}

void check_matmul(DType t, int64_t n_in, int64_t n_out, const std::vector<int64_t>& token_counts,
                  const std::vector<int>& thread_counts) {
  const auto wf = test::random_floats(size_t(n_out * n_in), uint32_t(n_in * 7919 + n_out));
  std::vector<uint8_t> wq(size_t(n_out) * row_bytes(t, n_in));
  for (int64_t o = 0; o < n_out; ++o) ref::quantize_row(t, wf.data() + o * n_in, wq.data() + o * row_bytes(t, n_in), n_in);
  const TensorView w = make_view(t, {n_out, n_in}, wq.data());
  for (int64_t nt : token_counts) {
    const std::string what = std::string(dtype_name(t)) + " n_in=" + std::to_string(n_in) +
                             " n_out=" + std::to_string(n_out) + " n_tokens=" + std::to_string(nt);
    const auto x = test::random_floats(size_t(nt * n_in), uint32_t(nt * 31 + n_in));
    std::vector<float> want(static_cast<size_t>(nt * n_out));
    ref::matmul(w, is_quant(t) ? q8_round_trip(x, nt, n_in).data() : x.data(), want.data(), nt);
    for (int threads : thread_counts) {
      std::vector<float> got(size_t(nt * n_out), NAN);
      ops::matmul(w, x.data(), got.data(), nt, pool(threads));
      ASSERT_EQ(count_mismatches(got, want, 1e-4f, 1e-4f, what + " threads=" + std::to_string(threads)), 0);
    }
    if (is_quant(t) && n_out * nt >= 64) {  // enough outputs for a meaningful RMS
      std::vector<float> exact(static_cast<size_t>(nt * n_out)), got(static_cast<size_t>(nt * n_out));
      ref::matmul(w, x.data(), exact.data(), nt);
      ops::matmul(w, x.data(), got.data(), nt, pool(2));
      EXPECT_LE(normalised_rmse(got, exact), 1e-2) << what;
    }
  }
}

class OpsMatmul : public ::testing::TestWithParam<DType> {};

TEST_P(OpsMatmul, MatchesReference) {
  const DType t = GetParam();
  for (int64_t n_in : {32, 64, 96, 576, 1536}) {
    for (int64_t n_out : {1, 3, 7, 17, 100, 577}) {
      // The largest shapes only at a few token counts to keep the suite fast.
      const bool big = n_in * n_out > 200'000;
      // Token counts cover every tail of the 3-, 4- and 5-token tiles and both sides of the
      // f16/bf16 small-batch limit (8).
      check_matmul(t, n_in, n_out, big ? std::vector<int64_t>{1, 7, 17} : std::vector<int64_t>{1, 2, 3, 4, 5, 7, 8, 9, 17, 64},
                   {1, 2, 3});
    }
  }
}

TEST_P(OpsMatmul, LongPrefillCrossesTokenChunks) {
  // More tokens than one prefill chunk (128) and a k split into slices (1536 > 768).
  check_matmul(GetParam(), 1536, 37, {200}, {2});
  check_matmul(GetParam(), 576, 50, {129}, {1, 3});
}

TEST_P(OpsMatmul, RowRangeView) {
  // An expert's neuron range as a row_range view matches those rows of the full matmul (up to
  // rounding: a row may land in a different register tile shape).
  const DType t = GetParam();
  const int64_t n_in = 64, n_out = 40;
  const auto wf = test::random_floats(size_t(n_out * n_in), 5);
  std::vector<uint8_t> wq(size_t(n_out) * row_bytes(t, n_in));
  for (int64_t o = 0; o < n_out; ++o) ref::quantize_row(t, wf.data() + o * n_in, wq.data() + o * row_bytes(t, n_in), n_in);
  const TensorView w = make_view(t, {n_out, n_in}, wq.data());
  for (int64_t nt : {1, 5, 9}) {
    const auto x = test::random_floats(size_t(nt * n_in), 6);
    std::vector<float> full(static_cast<size_t>(nt * n_out)), part(static_cast<size_t>(nt * 13));
    ops::matmul(w, x.data(), full.data(), nt, pool(2));
    ops::matmul(w.row_range(9, 13), x.data(), part.data(), nt, pool(2));
    for (int64_t tk = 0; tk < nt; ++tk)
      for (int64_t o = 0; o < 13; ++o)
        EXPECT_NEAR(part[size_t(tk * 13 + o)], full[size_t(tk * n_out + 9 + o)], 1e-5f) << tk << " " << o;
  }
}

TEST_P(OpsMatmul, DeterministicAcrossThreadCounts) {
  // Chunk boundaries are multiples of the row tile, so each row's arithmetic, and result, is
  // the same for any thread count.
  const DType t = GetParam();
  const int64_t n_in = 576, n_out = 103;
  const auto wf = test::random_floats(size_t(n_out * n_in), 8);
  std::vector<uint8_t> wq(size_t(n_out) * row_bytes(t, n_in));
  for (int64_t o = 0; o < n_out; ++o) ref::quantize_row(t, wf.data() + o * n_in, wq.data() + o * row_bytes(t, n_in), n_in);
  const TensorView w = make_view(t, {n_out, n_in}, wq.data());
  for (int64_t nt : {1, 2, 19}) {
    const auto x = test::random_floats(size_t(nt * n_in), 9);
    std::vector<float> one(static_cast<size_t>(nt * n_out)), other(one.size());
    ops::matmul(w, x.data(), one.data(), nt, pool(1));
    for (int threads : {2, 3}) {
      ops::matmul(w, x.data(), other.data(), nt, pool(threads));
      ASSERT_EQ(std::memcmp(one.data(), other.data(), one.size() * 4), 0) << "n_tokens=" << nt << " threads=" << threads;
    }
  }
}

TEST_P(OpsMatmul, GroupEqualsSeparateCalls) {
  // q/k/v-like weights on one input: one shared parallel pass for small batches, separate
  // calls beyond; the results must be the very same bits either way. Row counts that are not
  // multiples of the 4-row tile put matrix boundaries inside thread chunks.
  const DType t = GetParam();
  const int64_t n_in = 576;
  std::vector<std::vector<uint8_t>> store;
  std::vector<TensorView> views;
  for (int64_t n_out : {130, 33, 66}) {
    const auto wf = test::random_floats(size_t(n_out * n_in), uint32_t(n_out));
    store.emplace_back(size_t(n_out) * row_bytes(t, n_in));
    for (int64_t o = 0; o < n_out; ++o) ref::quantize_row(t, wf.data() + o * n_in, store.back().data() + o * row_bytes(t, n_in), n_in);
    views.push_back(make_view(t, {n_out, n_in}, store.back().data()));
  }
  const TensorView* ws[] = {&views[0], &views[1], &views[2]};
  for (int64_t nt : {1, 2, 4, 5}) {
    const auto x = test::random_floats(size_t(nt * n_in), uint32_t(nt));
    for (int threads : {1, 2, 3}) {
      std::vector<std::vector<float>> want(3), got(3);
      std::vector<float*> outs;
      for (int i = 0; i < 3; ++i) {
        want[i].assign(size_t(nt * views[i].rows()), 0.0f);
        got[i].assign(want[i].size(), NAN);
        ops::matmul(views[i], x.data(), want[i].data(), nt, pool(threads));
        outs.push_back(got[i].data());
      }
      ops::matmul_group(ws, x.data(), outs, nt, pool(threads));
      for (int i = 0; i < 3; ++i)
        ASSERT_EQ(std::memcmp(got[i].data(), want[i].data(), want[i].size() * 4), 0)
            << "matrix " << i << " n_tokens=" << nt << " threads=" << threads;
      // One input per weight (a MoE's chosen experts' down projections): equal to separate calls.
      std::vector<std::vector<float>> xi(3);
      std::vector<const float*> xs;
      for (int i = 0; i < 3; ++i) {
        xi[i] = test::random_floats(size_t(nt * n_in), uint32_t(100 * nt + i));
        ops::matmul(views[i], xi[i].data(), want[i].data(), nt, pool(threads));
        std::fill(got[i].begin(), got[i].end(), NAN);
        xs.push_back(xi[i].data());
      }
      ops::matmul_group(ws, xs, outs, nt, pool(threads));
      for (int i = 0; i < 3; ++i)
        ASSERT_EQ(std::memcmp(got[i].data(), want[i].data(), want[i].size() * 4), 0)
            << "per-input matrix " << i << " n_tokens=" << nt << " threads=" << threads;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllTypes, OpsMatmul,
                         ::testing::Values(DType::F32, DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

TEST(OpsMatmulPlain, F32OddInnerSize) {
  // k not a multiple of 8 (plain types only): masked and zero-padded tails.
  for (DType t : {DType::F32, DType::F16, DType::BF16})
    for (int64_t n_in : {1, 5, 13, 31, 77}) check_matmul(t, n_in, 9, {1, 2, 3, 7}, {1, 2});
}

}  // namespace
}  // namespace mf
