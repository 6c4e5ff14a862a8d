// Stage 2 of expert construction (expert.h): making up for the pruned neurons. Given a layer's
// kept neurons, compensate_layer makes its compact FFN (CompactFfn): ffn_down's kept columns
// as they are, with the pruned neurons' mean output as a bias (FLAP), or re-fitted by least
// squares on the dense activations' Gram matrices (down_refit.h), or, in a sequential re-fit,
// on the activations the expert's own earlier layers produce (sequential_refit.h), then
// optionally with its gate and up rows re-fitted too (row_refit.h). layer_widths splits the
// neuron budget over layers by the re-fit's error. A new compensation is a new method here.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "moe/expert.h"
#include "moe/expert_select.h"
#include "moe/row_refit.h"
#include "moe/sequential_refit.h"

namespace mf {

// The sequential re-fit: layer by layer on the activations of the expert's own pruned earlier
// layers, toward `target`, over about `tokens` calibration tokens.
struct SequentialOptions {
  bool on = false;
  int64_t tokens = 32768;
  RefitTarget target = RefitTarget::Residual;
  // ffn_down alone, or in `rounds` alternating rounds also the kept up rows (exact least
  // squares) or gate and up rows (a Gauss-Newton step), each followed by ffn_down again.
  RefitRows rows = RefitRows::Down;
  int rounds = 1;
  RowRefitOptions row_refit;
};

struct CompensateOptions {
  Compensation method = Compensation::None;  // None for the data-free scores
  double damp = 0.001;                       // least squares' ridge (down_refit.h)
  LayerWidths widths = LayerWidths::Uniform;
  SequentialOptions sequential;  // needs Compensation::LeastSquares
};

// Throws mf::Error (naming the expert) when the options conflict or the spec lacks what they
// need: Gram matrices for least squares, calibration tokens and a pool for a sequential re-fit.
void check_compensation(const ExpertSpec& spec, const CompensateOptions& opts, int64_t n_layer);

// Neurons per layer [n_layer], summing to n_layer * ranking.k: uniform, or by error: candidate
// widths k + i*step (step about n_ff/32, whole quantisation blocks) per layer, each scored by
// the least-squares re-fit error of its top-ranked neurons, then the exact best split
// (layer_widths.h). down: as rank_neurons.
std::vector<int64_t> layer_widths(const Model& model, const ExpertSpec& spec, const NeuronRanking& ranking,
                                  const std::vector<std::vector<float>>& down, const CompensateOptions& opts);

// The sequential re-fit's runner over the spec's token streams (null when the options ask for
// none). Use: per layer in order, moments(expert layers), compensate, lay out, advance.
std::unique_ptr<SequentialRefit> start_sequential_refit(const Model& model, const ExpertSpec& spec,
                                                        const CompensateOptions& opts);

// What a layer's compensation reads besides its kept neurons.
struct LayerFitInput {
  const Model& model;
  const ExpertSpec& spec;
  int layer = 0;
  const std::vector<float>& down;  // [n_embd, n_ff] the dense ffn_down in f32 (dense_down)
  // A sequential re-fit's (null otherwise): the moments of the expert's own activations at this
  // layer against the target, and, for row re-fits, the samples behind them.
  const RefitMoments* moments = nullptr;
  const SequentialRefit::Samples* samples = nullptr;
};

// Layer in.layer's compact FFN on `kept` (ascending dense neuron ids). Throws mf::Error when
// the inputs lack what the method needs.
CompactFfn compensate_layer(const LayerFitInput& in, const std::vector<int32_t>& kept, const CompensateOptions& opts);

}  // namespace mf
