#include "calib/gram_accumulator.h"

#include <algorithm>

namespace mf {

GramAccumulator::GramAccumulator(int64_t n_layer, int64_t width)
    : width_(width),
      sum_(n_layer, Eigen::MatrixXd::Zero(width, width)),
      pending_(n_layer, std::vector<float>(size_t(kBatch * width))),
      pending_rows_(n_layer, 0) {}

void GramAccumulator::add(int layer, const float* rows, int64_t n) {
  while (n > 0) {
    const int64_t take = std::min(n, kBatch - pending_rows_[layer]);
    std::copy_n(rows, take * width_, pending_[layer].begin() + pending_rows_[layer] * width_);
    pending_rows_[layer] += take;
    rows += take * width_;
    n -= take;
    if (pending_rows_[layer] == kBatch) flush(layer);
  }
}

void GramAccumulator::flush(int layer) {
  const int64_t n = pending_rows_[layer];
  if (n == 0) return;
  Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>> a(pending_[layer].data(), n,
                                                                                          width_);  // [n, width]
  Eigen::MatrixXf part = Eigen::MatrixXf::Zero(width_, width_);  // [width, width]
  part.selfadjointView<Eigen::Lower>().rankUpdate(a.transpose());
  sum_[layer].triangularView<Eigen::Lower>() += part.cast<double>();
  pending_rows_[layer] = 0;
}

std::vector<std::vector<float>> GramAccumulator::finish() {
  std::vector<std::vector<float>> out;
  for (size_t l = 0; l < sum_.size(); ++l) {
    flush(int(l));
    Eigen::MatrixXd& g = sum_[l];
    g.triangularView<Eigen::StrictlyUpper>() = g.transpose();
    out.emplace_back(size_t(width_ * width_));
    Eigen::Map<Eigen::MatrixXf>(out.back().data(), width_, width_) = g.cast<float>();  // symmetric: layout-free
  }
  return out;
}

}  // namespace mf
