// Carving domain experts out of a dense model's FFNs from calibration statistics.
//   neurons: structured; an expert keeps k = density*n_ff neurons per layer (rows of gate/up,
//            columns of down), copied into compact dense matrices that run as plain matmuls.
//   dowp:    unstructured (Free-MoE's Domain-Oriented Weight Purification, as documented in
//            docs/moe.md); full-size FFN matrices with purified weights zeroed and survivors
//            rescaled. The quality reference; no faster than dense.
// build_expert runs the stages, each with its own options derived from BuildOptions by
// stage_options: select neurons (expert_select.h) -> compensate (expert_compensate.h) ->
// lay out and quantise (expert_layout.h).
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "moe/expert.h"
#include "moe/expert_compensate.h"
#include "moe/expert_layout.h"
#include "moe/expert_select.h"
#include "moe/row_refit.h"
#include "moe/sequential_refit.h"

namespace mf {

struct BuildOptions {
  std::string mode = "neurons";  // neurons | dowp
  double density = 0.5;          // fraction of FFN neurons (neurons) or FFN weights (dowp) kept, in (0, 1]
  double shared_fraction = 0.0;  // neurons: part of each expert's budget chosen from pooled importance
  NeuronScore score = NeuronScore::Activation;
  DowpScale dowp_scale = DowpScale::Energy;  // dowp: the paper's scaling alpha (see docs/moe.md)
  Compensation compensation = Compensation::Mean;
  double refit_damp = 0.001;  // LeastSquares: ridge, as a fraction of the mean kept second moment (docs/moe.md)
  // LeastSquares: choose the neurons by structured OBS on the Gram matrices (down_refit.h)
  // instead of by score.
  bool obs_select = false;
  LayerWidths widths = LayerWidths::Uniform;
  // LeastSquares: re-fit layer by layer on the activations of the expert's own pruned earlier
  // layers, toward `refit_target` (sequential_refit.h), over about this many tokens.
  // The widths still come from the dense statistics; with obs_select, OBS chooses each layer's
  // neurons again on the sequential moments.
  bool sequential = false;
  int64_t sequential_tokens = 32768;
  RefitTarget refit_target = RefitTarget::Residual;
  // Sequential re-fit: which FFN matrices it re-fits (row_refit.h): ffn_down alone, or in
  // `refit_rounds` alternating rounds also the kept ffn_up rows (exact least squares), or the
  // gate and up rows (a Gauss-Newton step), each round followed by ffn_down again.
  RefitRows refit_rows = RefitRows::Down;
  int refit_rounds = 1;
  RowRefitOptions row_refit;
  uint64_t seed = 1;
};

// What each stage reads of BuildOptions: the one place the public options are mapped (the
// data-free scores get no compensation, OBS only ranks with least squares).
struct ExpertStageOptions {
  SelectOptions select;
  CompensateOptions compensate;
  LayoutOptions layout;
};
ExpertStageOptions stage_options(const BuildOptions& opts);

// Called as an expert's layers are built: (layers built, n_layer, share of the expert's build
// cost done, in [0, 1]). A sequential re-fit takes minutes per expert on a real model; this is
// how a caller shows where it is. Its layers' costs differ several-fold with their widths,
// so an ETA should follow the share, not the layer count.
using LayerProgress = std::function<void(int, int, double)>;

// The share of an expert's build cost done once each layer is built [n_layer]: the last is 1.
// Estimated from the layer widths where the row re-fits' conjugate gradients dominate, equal
// steps otherwise.
std::vector<double> build_cost_done(const std::vector<int64_t>& widths, int64_t n_embd, int64_t n_ff, const CompensateOptions& opts);

// Builds one expert. `pooled` (sum over all domains) is needed for shared_fraction > 0.
Expert build_expert(const Model& model, const ExpertSpec& spec, const BuildOptions& opts,
                    const std::vector<LayerStats>* pooled = nullptr, const LayerProgress& on_layer = {});

// Throws mf::Error unless density is in (0, 1] and shared_fraction in [0, 1].
void check_build_options(const BuildOptions& opts);

}  // namespace mf
