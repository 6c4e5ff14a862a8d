// MoDE (modular domain experts) in the trainer: a frozen backbone split into blocks of layers;
// beside each block, every domain expert has k transformer layers of its own, fed the block's
// input, and a per-block gate mixes the outputs:
//   y_b = a_bb * backbone_b(x_b) + sum_j a_j * expert_{j,b}(x_b),  (a_bb, a_1..a_N) = gate_b(x_b)
// where gate_b is linear + softmax (or its top gate_top_k, renormalised). Parameter names follow
// the module tree (mode.layers.I..., mode.gates.B...); the export renames the expert layers to
// model.layers.(n_layer + I) so the engine's layer tables bind them (docs/mode.md).
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

#include "train/llama_torch.h"
#include "train/train_config.h"

namespace mf {

struct ModeImpl : torch::nn::Module {
  ModeImpl(const TrainModelConfig& c, const TrainModeConfig& m, std::vector<std::string> experts);
  // The block's input x [B, T, E] and its backbone layers' output h_bb [B, T, E] -> the mix [B, T, E].
  torch::Tensor mix(int b, const torch::Tensor& x, const torch::Tensor& h_bb, const torch::Tensor& cos,
                    const torch::Tensor& sin);
  // Gate weights [.., 1 + n_expert] of the block for inputs x [.., E] (column 0: the backbone).
  torch::Tensor gate_weights(int b, const torch::Tensor& x);
  BlockImpl& layer(int expert, int b, int l) { return *layers[size_t(layer_index(expert, b, l))]->as<BlockImpl>(); }
  int layer_index(int expert, int b, int l) const { return (expert * n_block + b) * k + l; }
  int first_layer(int b) const { return b * n_layer_backbone / n_block; }  // backbone layers [first(b), first(b + 1))
  int n_expert() const { return int(experts.size()); }

  std::vector<std::string> experts;
  int n_block, k, n_layer_backbone, gate_top_k;  // gate_top_k 0: dense gate
  torch::nn::ModuleList layers;                  // [n_expert * n_block * k] Blocks, index layer_index(j, b, l)
  torch::nn::ModuleList gates;                   // [n_block] Linear(E, 1 + n_expert) with bias
  bool record = false;                           // mix() appends each block's mean gate weights [1 + N] to recorded
  std::vector<torch::Tensor> recorded;
};
TORCH_MODULE(Mode);

// Attaches MoDE to a model holding the backbone (load_base_weights first): freezes the backbone,
// adds the run's experts (stage 1: cfg.expert, initialised per cfg.init; stage 2: every expert,
// loaded from its stage-1 directory, the composed gate started from their stage-1 gates).
// Returns the parameters this stage trains. Throws mf::Error when the blocks do not divide the
// layers, or a stage-1 expert was trained for another backbone or another layout (naming it).
std::vector<torch::Tensor> attach_mode(LlamaLM& model, const TrainModeConfig& cfg, uint64_t seed);

// A 64-bit FNV-1a hash of the backbone's parameters (every one outside mode.*), in name order:
// a stage-1 expert records it, stage 2 refuses experts of a different backbone.
std::string backbone_fingerprint(LlamaLM& model);

// The Hugging Face / engine name of a parameter of a MoDE model (expert layers become
// model.layers.(n_layer + I), gates model.mode_gates.B).
std::string mode_export_name(const LlamaLM& model, const std::string& key);

// Mean gate weights per block and input domain (rows of `csv`: domain,block,backbone,<experts>)
// over the given token batches, for the report.
void write_gate_report(LlamaLM& model, const std::vector<std::pair<std::string, torch::Tensor>>& batches,
                       const std::string& csv);

}  // namespace mf
