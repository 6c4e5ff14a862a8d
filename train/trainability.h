// Expert trainability (MO-CTE): the top singular value of an expert's Jacobian with respect to
// its parameters, on the tokens routed to it, and freezing of experts whose value has stayed
// below a threshold for a window of checks (their learning has finished).
#pragma once
#include <torch/torch.h>

#include <vector>

#include "train/moe_torch.h"

namespace mf {

// sigma_max(J), J = d expert(x) / d theta (x [n, E] fixed), by power iteration on J^T J.
// J^T u is one backward pass; J v comes from a second backward through it (the derivative of
// u . J v with respect to u), so no forward-mode AD is needed. Deterministic for a seed.
double jacobian_top_singular_value(ExpertMlp& expert, const torch::Tensor& x, int iterations, uint64_t seed);

// Per layer and expert: consecutive checks below `threshold` times the expert's highest value
// so far (its learning has slowed to that fraction of its peak), and whether it is frozen.
class ExpertFreezer {
 public:
  ExpertFreezer(int n_layers, int n_expert, double threshold, int window);
  // Records one check; returns true when this check freezes the expert.
  bool observe(int layer, int expert, double sigma);
  bool frozen(int layer, int expert) const { return frozen_[size_t(layer)][size_t(expert)]; }
  // For checkpoints: -1 when frozen, else the checks below the threshold in a row; and the
  // highest value so far (0: none yet).
  int state(int layer, int expert) const { return frozen(layer, expert) ? -1 : below_[size_t(layer)][size_t(expert)]; }
  double reference(int layer, int expert) const { return first_[size_t(layer)][size_t(expert)]; }
  void set_state(int layer, int expert, int state, double reference);
  int n_frozen() const;

 private:
  double threshold_;
  int window_;
  std::vector<std::vector<int>> below_;
  std::vector<std::vector<double>> first_;  // the peak per expert
  std::vector<std::vector<bool>> frozen_;
};

// Stops a frozen expert's parameters from changing: no gradient, so the optimiser (AdamW
// skips parameters without one) and weight decay leave them alone.
void freeze_expert(ExpertMlp& expert);

}  // namespace mf
