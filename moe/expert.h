// What the stages of expert construction share (expert_builder.h runs them):
//   select (expert_select.h) -> compensate (expert_compensate.h) -> lay out (expert_layout.h).
// An expert's inputs (ExpertSpec), the method names the stages' options use, the compact FFN
// compensation hands to layout (CompactFfn), and the result (Expert).
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "calib/calib_stats.h"
#include "core/thread_pool.h"
#include "model/model.h"

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
  ByRelativeError,  // the same with each layer's error divided by its dense FFN output energy,
                    // so a layer whose outputs are large does not take the budget for that alone
};

enum class RefitRows { Down, Up, GateUp };
// "down", "up" or "gate-up"; throws mf::Error on another name.
RefitRows parse_refit_rows(const std::string& name);
const char* refit_rows_name(RefitRows r);

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
  // serves. A sub-domain expert counts only its own samples in them (token_mask), unlike the
  // Gram matrices, which are its whole domain's. `pool` (needed by the sequential re-fit,
  // optional otherwise) runs the re-fit's forward passes and token chunks and the layers' OBS
  // orders.
  std::vector<std::span<const int32_t>> token_streams;
  // Optional, over token_streams[0] (its only stream): the tokens the re-fit counts, the others
  // running only as their context (masked_refit_windows).
  std::vector<uint8_t> token_mask;
  ThreadPool* pool = nullptr;
};

// One layer's compact FFN on its k kept neurons, in f32: what compensation makes and layout
// writes in the dense layer's dtypes.
struct CompactFfn {
  std::vector<float> gate, up;  // [k, n_embd] each: re-fitted rows; empty: the dense rows, copied as they are
  std::vector<float> down;      // [n_embd, k]
  std::vector<float> bias;      // [n_embd] ffn_down's bias; empty: none (no compensation)
};

// One expert's FFN weights (owned) and the per-layer views a Session runs.
struct Expert {
  std::string name;
  int domain = -1, subdomain = 0;
  std::vector<std::vector<int32_t>> neurons;  // [n_layer][k] kept dense neuron ids (neurons mode)
  std::vector<std::vector<uint8_t>> buffers;  // gate, up, down bytes per layer
  std::vector<LayerWeights> layers;           // attention views point into the dense model
  int64_t ffn_bytes() const;                  // bytes of this expert's own FFN weights

  // Moves keep the views valid (the buffers' heap blocks move with them); a copy's would point
  // into the original's buffers, so there are none.
  Expert() = default;
  Expert(Expert&&) = default;
  Expert& operator=(Expert&&) = default;
  Expert(const Expert&) = delete;
  Expert& operator=(const Expert&) = delete;
};

// Bytes of the FFN weights (gate, up, down and down's bias) of these layers.
int64_t ffn_weight_bytes(const std::vector<LayerWeights>& layers);

// The dense ffn_down of a layer in f32, [n_embd, n_ff] row-major: what scores, OBS and the
// re-fits read.
std::vector<float> dense_down(const Model& model, int layer);

}  // namespace mf
