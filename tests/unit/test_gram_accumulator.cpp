// GramAccumulator: batched f32 rank-k updates into f64 sums equal the direct sum of a a^T.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "calib/gram_accumulator.h"

namespace mf {
namespace {

TEST(GramAccumulator, MatchesTheDirectSumAcrossBatchBoundaries) {
  const int64_t width = 7, rows = 2 * GramAccumulator::kBatch + 185;  // two full batches and a partial one
  std::mt19937 rng(11);
  std::normal_distribution<float> g(0.5f, 1.0f);
  std::vector<float> a(size_t(rows * width));  // [rows, width]
  for (float& x : a) x = g(rng);
  GramAccumulator acc(2, width);
  // Layer 1 gets the rows in uneven blocks (33 rows at a time); layer 0 gets nothing.
  for (int64_t r = 0; r < rows; r += 33) acc.add(1, a.data() + r * width, std::min<int64_t>(33, rows - r));
  std::vector<std::vector<float>> sums = acc.finish();  // [2][width * width]
  ASSERT_EQ(sums.size(), 2u);
  for (float x : sums[0]) EXPECT_EQ(x, 0.0f);
  for (int64_t i = 0; i < width; ++i)
    for (int64_t j = 0; j < width; ++j) {
      double want = 0;
      for (int64_t r = 0; r < rows; ++r) want += double(a[r * width + i]) * a[r * width + j];
      EXPECT_NEAR(sums[1][i * width + j], want, 1e-4 * (1 + std::fabs(want))) << i << "," << j;
      EXPECT_EQ(sums[1][i * width + j], sums[1][j * width + i]);  // symmetric
    }
}

}  // namespace
}  // namespace mf
