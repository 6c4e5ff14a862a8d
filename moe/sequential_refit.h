// Sequential least-squares re-fit (SparseGPT's layer-by-layer order, applied to structured
// experts): layer l's ffn_down is re-fitted on the activations the expert itself produces at
// layer l, once layers 0..l-1 are already pruned and re-fitted, toward a target on the same
// tokens: the dense model's FFN output, or what the expert's residual stream needs to be
// back on the dense model's after layer l (which also corrects the drift earlier layers left).
// The plain re-fit uses the dense model's activations at every layer and so ignores the error
// the pruned earlier layers feed forward.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "core/thread_pool.h"
#include "model/model.h"
#include "model/session.h"

namespace mf {

// Token windows an expert's sequential re-fit runs through the model.
struct RefitWindows {
  std::vector<std::span<const int32_t>> windows;
  // Empty, or one per window: which of its tokens the moments count (1) and which only give
  // the others their context (0).
  std::vector<std::vector<uint8_t>> masks;
  int64_t tokens() const;  // the tokens counted
};

// Windows of `window` tokens spread evenly over the given token streams (the calibration
// samples of the domains an expert serves), about `budget` tokens in all. The spans point into
// `streams`. Throws mf::Error if there are no tokens.
RefitWindows refit_windows(const std::vector<std::span<const int32_t>>& streams, int64_t budget, int64_t window = 256);

// Windows over one stream whose tokens the moments count only where `counted` [stream size] is 1
// (a sub-domain's samples inside its domain's stream, so they keep the context they were
// written in): the stream cut into windows of `window` tokens, those with a counted token kept,
// evenly spaced, until they count about `budget` tokens, each ending at its last counted token
// (later ones cannot change it). Throws mf::Error if none counts.
RefitWindows masked_refit_windows(std::span<const int32_t> stream, const std::vector<uint8_t>& counted, int64_t budget,
                                  int64_t window = 256);

// What layer l's re-fitted FFN output y should reproduce, per token:
// Ffn:      the dense FFN output, y = block_out_dense - ffn_resid_dense;
// Residual: the dense block output less the expert's residual stream entering the FFN,
//           y = block_out_dense - ffn_resid_expert, so the expert's stream after layer l is
//           as close to the dense one as this layer can bring it.
// With a post-FFN norm (Gemma 3), y is what the FFN should output before that norm: the
// difference above divided by the norm's weight, at the dense FFN output's scale per token.
enum class RefitTarget { Ffn, Residual };

// Sums over the windows' tokens, for one layer: of a a^T and a, with a the FFN activations
// [n_ff] at `layer` of the model run with `expert_layers` (earlier layers pruned, this one
// dense), and of y a^T and y, with y the target [n_embd] above.
struct RefitMoments {
  std::vector<float> gram;       // [n_ff * n_ff] row-major
  std::vector<float> sum;        // [n_ff]
  std::vector<float> out_cross;  // [n_embd * n_ff] row-major: sum of y a^T
  std::vector<float> out_sum;    // [n_embd]
  int64_t tokens = 0;
};

// This is the reference: it runs every window through layers 0..layer, so visiting all layers
// costs a number of blocks quadratic in the depth. Builds use SequentialRefit below, which
// must give the same sums. Throws mf::Error if layer `layer` of expert_layers is not the dense
// layer's width.
RefitMoments collect_refit_moments(const Model& model, const std::vector<LayerWeights>& expert_layers, int layer,
                                   const RefitWindows& windows, RefitTarget target, ThreadPool& pool);

// The same moments, layer after layer, for one expert being built: it keeps each window's
// residual stream entering the current layer, the expert's and the dense model's [tokens,
// n_embd] each, so a layer costs three blocks per window (dense, expert with the layer still
// dense, expert with it pruned) and the whole build grows linearly with depth.
// Use: for each layer in order, moments(expert), build the layer, advance(expert).
class SequentialRefit {
 public:
  // Throws mf::Error if there are no windows or one is longer than Session::kMaxBatch.
  SequentialRefit(const Model& model, RefitWindows windows, RefitTarget target, ThreadPool& pool);
  int layer() const { return layer_; }
  // Also keep, at each moments(), the counted tokens' FFN inputs and targets (an up re-fit's data).
  void keep_samples(bool on) { keep_samples_ = on; }
  struct Samples {
    std::vector<float> inputs;   // [tokens, n_embd]: the expert's normalised FFN inputs
    std::vector<float> targets;  // [tokens, n_embd]: y above
    int64_t tokens = 0;
  };
  const Samples& samples() const { return samples_; }
  // collect_refit_moments(model, expert_layers, layer(), ...): expert_layers holds the expert's
  // layers below layer() (as advance() saw them) and layer() still dense.
  RefitMoments moments(const std::vector<LayerWeights>& expert_layers);
  // Moves the streams past layer(): the expert's through expert_layers[layer()], now built.
  void advance(const std::vector<LayerWeights>& expert_layers);

 private:
  // Runs layer() on the rows [n, n_embd] in place, copying the hook points `names` of it.
  void run(const std::vector<LayerWeights>* layers, std::vector<float>& rows, int64_t n,
           const std::vector<std::string_view>& names, std::vector<std::vector<float>*> out);

  const Model& model_;
  RefitWindows windows_;
  RefitTarget target_;
  std::unique_ptr<Session> session_;
  int layer_ = 0;
  bool dense_ahead_ = false;                  // moments() has moved dense_ past layer_
  bool keep_samples_ = false;
  Samples samples_;
  std::vector<std::vector<float>> expert_, dense_;  // per window [n, n_embd]: streams entering layer_
};

}  // namespace mf
