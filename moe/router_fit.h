// Fits the router's domain classifier: one hidden ReLU layer (or none: softmax regression)
// trained with class-weighted cross-entropy by minibatch AdamW (learning rate decayed to 0 by
// a cosine over max_epochs), measured on held-out rows after every epoch (and, with a
// patience, stopped when their loss stops improving, keeping the best epoch). Deterministic:
// a seeded, portable generator draws the initial weights and the shuffles, and the training
// runs on one thread (Eigen without OpenMP), about 4 s for 59K samples x 128 dims.
#pragma once
#include <cstdint>
#include <vector>

#include "moe/router.h"

namespace mf {

struct ClassifierData {
  const float* x = nullptr;  // [n, dim] standardised features
  const int* y = nullptr;    // [n] class in [0, n_class)
  const float* w = nullptr;  // [n] sample weight (classes balanced within each split)
  int64_t n = 0, dim = 0;
  int n_class = 0;
  std::vector<int64_t> train, holdout;  // row ids; holdout may be empty (then max_epochs run)
};

// Sets r.n_hidden, r.hidden_weight, r.hidden_bias, r.weight and r.bias.
void fit_domain_classifier(const ClassifierData& data, const RouterTrainOptions& opts, Router& r,
                           RouterTrainReport* report);

}  // namespace mf
