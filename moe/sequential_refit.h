// Sequential least-squares re-fit (SparseGPT's layer-by-layer order, applied to structured
// experts): layer l's ffn_down is re-fitted on the activations the expert itself produces at
// layer l, once layers 0..l-1 are already pruned and re-fitted, toward the dense model's FFN
// output on the same tokens. The plain re-fit uses the dense model's activations at every
// layer and so ignores the error the pruned earlier layers feed forward.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "core/thread_pool.h"
#include "model/model.h"

namespace mf {

// Token windows an expert's sequential re-fit runs through the model.
struct RefitWindows {
  std::vector<std::span<const int32_t>> windows;
  int64_t tokens() const;
};

// Windows of `window` tokens spread evenly over the given token streams (the calibration
// samples of the domains an expert serves), about `budget` tokens in all. The spans point into
// `streams`. Throws mf::Error if there are no tokens.
RefitWindows refit_windows(const std::vector<std::span<const int32_t>>& streams, int64_t budget, int64_t window = 256);

// Sums over the windows' tokens, for one layer: of a a^T and a, with a the FFN activations
// [n_ff] at `layer` of the model run with `expert_layers` (earlier layers pruned, this one
// dense), and of a_t a^T and a_t, with a_t the dense model's activations there.
struct RefitMoments {
  std::vector<float> gram, cross;        // [n_ff * n_ff] row-major; cross rows index a_t
  std::vector<float> sum, target_sum;    // [n_ff]
  int64_t tokens = 0;
};

// Throws mf::Error if layer `layer` of expert_layers is not the dense layer's width.
RefitMoments collect_refit_moments(const Model& model, const std::vector<LayerWeights>& expert_layers, int layer,
                                   const RefitWindows& windows, ThreadPool& pool);

}  // namespace mf
