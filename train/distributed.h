// Data-parallel training over torch's c10d: a TCPStore at the master's address for rendezvous,
// ProcessGroupGloo for the all-reduces. No libtorch in this header beyond tensors.
#pragma once
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "train/train_config.h"

namespace mf {

class DataParallel {
 public:
  // Joins the group: rank 0 hosts the store; every rank waits for all (mf::Error after
  // timeout_s naming the master it could not reach, never a hang).
  explicit DataParallel(const DistOptions& o);
  ~DataParallel();
  int rank() const { return opts_.rank; }
  int world_size() const { return opts_.world_size; }
  // Replaces every gradient by its mean over the ranks (one all-reduce of a flat buffer).
  void average_gradients(const std::vector<torch::Tensor>& params);
  double average(double v);  // mean of a scalar over the ranks
  torch::Tensor sum(const torch::Tensor& t);  // element-wise sum over the ranks (a new tensor)
  void barrier();

 private:
  struct Impl;
  DistOptions opts_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mf
