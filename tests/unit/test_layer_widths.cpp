// The layer-width split against exhaustive search.
#include <gtest/gtest.h>

#include <functional>
#include <limits>
#include <random>

#include "core/error.h"
#include "moe/layer_widths.h"

namespace mf {
namespace {

// Least summed error over every combination summing to total (infinity when none does).
double brute_force(const std::vector<WidthCurve>& c, int64_t total) {
  double best = std::numeric_limits<double>::infinity();
  std::function<void(size_t, int64_t, double)> go = [&](size_t l, int64_t sum, double err) {
    if (l == c.size()) {
      if (sum == total) best = std::min(best, err);
      return;
    }
    for (size_t i = 0; i < c[l].width.size(); ++i) go(l + 1, sum + c[l].width[i], err + c[l].error[i]);
  };
  go(0, 0, 0.0);
  return best;
}

TEST(LayerWidths, MatchesExhaustiveSearch) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  for (int trial = 0; trial < 50; ++trial) {
    const int L = 2 + trial % 4;
    std::vector<WidthCurve> curves(L);
    for (WidthCurve& c : curves)  // widths 2, 4, ..., 16 with a decreasing, uneven error
      for (int64_t w = 2; w <= 16; w += 2) {
        c.width.push_back(w);
        c.error.push_back(u(rng) * 10.0 / double(w));
      }
    const int64_t total = 8 * L;  // the uniform split is always possible
    std::vector<int64_t> got = allocate_widths(curves, total);
    ASSERT_EQ(got.size(), size_t(L));
    int64_t sum = 0;
    double err = 0;
    for (int l = 0; l < L; ++l) {
      sum += got[l];
      const auto it = std::find(curves[l].width.begin(), curves[l].width.end(), got[l]);
      ASSERT_NE(it, curves[l].width.end());
      err += curves[l].error[it - curves[l].width.begin()];
    }
    EXPECT_EQ(sum, total);
    EXPECT_NEAR(err, brute_force(curves, total), 1e-12) << "trial " << trial;
  }
}

TEST(LayerWidths, GivesMoreToTheLayerThatLosesMore) {
  // Layer 0 loses 10 per pruned unit, layer 1 loses 1: the budget goes to layer 0.
  std::vector<WidthCurve> c(2);
  for (int64_t w = 1; w <= 4; ++w) {
    c[0].width.push_back(w), c[0].error.push_back(10.0 * double(4 - w));
    c[1].width.push_back(w), c[1].error.push_back(1.0 * double(4 - w));
  }
  EXPECT_EQ(allocate_widths(c, 5), (std::vector<int64_t>{4, 1}));
}

TEST(LayerWidths, RejectsImpossibleTotalsAndRaggedCurves) {
  std::vector<WidthCurve> c(2);
  c[0] = {{2, 4}, {1.0, 0.0}};
  c[1] = {{2, 4}, {1.0, 0.0}};
  EXPECT_THROW(allocate_widths(c, 5), Error);  // only even sums
  EXPECT_THROW(allocate_widths(c, 10), Error);
  c[1].error.pop_back();
  EXPECT_THROW(allocate_widths(c, 6), Error);
}

}  // namespace
}  // namespace mf
