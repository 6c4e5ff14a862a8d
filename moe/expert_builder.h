// Carving domain experts out of a dense model's FFNs from calibration statistics.
//   neurons: structured; an expert keeps k = density*n_ff neurons per layer (rows of gate/up,
//            columns of down), copied into compact dense matrices that run as plain matmuls.
//   dowp:    unstructured (Free-MoE's Domain-Oriented Weight Purification, as documented in
//            docs/moe.md); full-size FFN matrices with purified weights zeroed and survivors
//            rescaled. The quality reference; no faster than dense.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "calib/calib_stats.h"
#include "core/thread_pool.h"
#include "model/model.h"
#include "moe/row_refit.h"
#include "moe/sequential_refit.h"

namespace mf {

// How a neuron's importance is scored (neurons mode and the structured baselines).
enum class NeuronScore {
  Activation,  // on the expert's own calibration tokens: sqrt(E[a_j^2]) * ||down[:, j]||, or with
               // compensation sqrt(Var[a_j]) * ||down[:, j]|| (the error left once the mean is restored)
  Magnitude,   // ||gate_j|| * ||up_j|| * ||down[:, j]||, no data
  Random,      // seeded uniform
};

enum class DowpScale { None, Energy };

// How neurons mode makes up for the pruned neurons (Activation score only; the data-free
// baselines get none).
enum class Compensation {
  None,          // exactly the masked dense FFN
  Mean,          // each pruned neuron replaced by its mean output, folded into an ffn_down bias (FLAP)
  LeastSquares,  // ffn_down and the bias re-fitted on the kept neurons (down_refit.h); needs Gram matrices
};

// How neurons mode splits an expert's neuron budget (density * n_ff * n_layer) over layers.
enum class LayerWidths {
  Uniform,  // every layer keeps density * n_ff
  ByError,  // the split minimising the summed least-squares re-fit error of the FFN outputs
            // (layer_widths.h); needs Compensation::LeastSquares
};

struct ExpertSpec {
  std::string name;           // "code/0"
  int domain = -1;            // index into the domain list; -1 for pooled baselines
  int subdomain = 0;
  std::vector<LayerStats> stats;  // [n_layer] summed calibration stats (empty for Magnitude/Random)
  // For Compensation::LeastSquares: sum of a a^T [n_layer][n_ff * n_ff] and the same tokens'
  // statistics [n_layer] (act_sum, tokens). A sub-domain expert uses its whole domain's.
  const std::vector<std::vector<float>>* gram = nullptr;
  std::vector<LayerStats> gram_stats;
  // For BuildOptions::sequential: the calibration token streams of the domain(s) this expert
  // serves and the pool the forward passes run on. A sub-domain expert counts only its own
  // samples in them (token_mask), unlike the Gram matrices, which are its whole domain's.
  std::vector<std::span<const int32_t>> token_streams;
  // Optional, over token_streams[0] (its only stream): the tokens the re-fit counts, the others
  // running only as their context (masked_refit_windows).
  std::vector<uint8_t> token_mask;
  ThreadPool* pool = nullptr;
};

enum class RefitRows { Down, Up, GateUp };
// "down", "up" or "gate-up"; throws mf::Error on another name.
RefitRows parse_refit_rows(const std::string& name);
const char* refit_rows_name(RefitRows r);

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

// One expert's FFN weights (owned) and the per-layer views a Session runs.
struct Expert {
  std::string name;
  int domain = -1, subdomain = 0;
  std::vector<std::vector<int32_t>> neurons;  // [n_layer][k] kept dense neuron ids (neurons mode)
  std::vector<std::vector<uint8_t>> buffers;  // gate, up, down bytes per layer
  std::vector<LayerWeights> layers;           // attention views point into the dense model
  int64_t ffn_bytes() const;                  // bytes of this expert's own FFN weights
};

// Bytes of the FFN weights (gate, up, down and down's bias) of these layers.
int64_t ffn_weight_bytes(const std::vector<LayerWeights>& layers);

// Neuron scores [n_ff] of a layer (higher = more important).
// centered: Activation scores use the variance instead of the second moment.
std::vector<double> neuron_scores(const Model& model, int layer, const LayerStats* stats, NeuronScore score,
                                  uint64_t seed, bool centered = false);
// Indices of the k highest scores, ascending; `forced` ids come first in the budget.
std::vector<int32_t> top_k_neurons(const std::vector<double>& scores, int64_t k, const std::vector<int32_t>& forced = {});
// Neurons kept at a density: k = round(density*n_ff), at least 1, rounded up to whole
// quantisation blocks when the weights are quantised (so compact rows stay whole blocks).
int64_t neurons_for_density(const Model& model, double density);

// Builds one expert. `pooled` (sum over all domains) is needed for shared_fraction > 0.
Expert build_expert(const Model& model, const ExpertSpec& spec, const BuildOptions& opts,
                    const std::vector<LayerStats>* pooled = nullptr);

// Throws mf::Error unless density is in (0, 1] and shared_fraction in [0, 1].
void check_build_options(const BuildOptions& opts);
// The same, plus what the model's architecture allows (throws mf::Error naming the option).
void check_build_options(const BuildOptions& opts, const ArchInfo& arch);

}  // namespace mf
