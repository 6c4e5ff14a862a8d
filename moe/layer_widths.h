// Non-uniform expert widths: how many FFN neurons each layer keeps when the layers share one
// budget. Pruning error is not spread evenly over depth; with a curve of each layer's error
// against its width, the best split of a fixed total is a small knapsack solved exactly.
#pragma once
#include <cstdint>
#include <vector>

namespace mf {

// One layer's candidate widths (any order) and the error at each.
struct WidthCurve {
  std::vector<int64_t> width;
  std::vector<double> error;
};

// One width per layer, taken from its curve, summing exactly to `total` and minimising the
// summed error (ties: the earliest candidate). Throws mf::Error when no choice sums to total
// or a curve is empty or ragged.
std::vector<int64_t> allocate_widths(const std::vector<WidthCurve>& curves, int64_t total);

}  // namespace mf
