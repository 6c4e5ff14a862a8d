// Per-layer sums of a a^T over the rows a of activation blocks (the FFN activations' second
// moments that build-moe's least-squares re-fit needs). Rows are buffered and added kBatch at
// a time as one f32 symmetric rank-k update, accumulated in f64: far faster than one f64
// update per 32-token sample, and as exact for the sums of millions of tokens.
#pragma once
#include <cstdint>
#include <vector>

#include <Eigen/Core>

namespace mf {

class GramAccumulator {
 public:
  static constexpr int64_t kBatch = 512;  // rows per update

  GramAccumulator(int64_t n_layer, int64_t width);
  void add(int layer, const float* rows, int64_t n);  // rows: [n, width]
  // The sums, [n_layer][width * width] row-major and symmetric (adds the pending rows first).
  std::vector<std::vector<float>> finish();

 private:
  void flush(int layer);
  int64_t width_;
  std::vector<Eigen::MatrixXd> sum_;         // [n_layer][width, width] lower triangle
  std::vector<std::vector<float>> pending_;  // [n_layer][kBatch * width]
  std::vector<int64_t> pending_rows_;        // [n_layer]
};

}  // namespace mf
