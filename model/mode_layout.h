// MoDE (modular domain experts, trained by moeforge): a backbone whose layers are split into
// blocks, with per block and per domain expert k extra transformer layers fed the block's input,
// and a gate mixing the backbone's output with the experts':
//   y_b = a_bb * backbone_b(x_b) + sum_j a_j * expert_{j,b}(x_b),  a = softmax(W_b x_b + c_b)
// (or its top gate_top_k, renormalised). The expert layers are ordinary layers of Weights::layers
// after the backbone's, so the loaders, the KV cache and run_layer treat them like any other.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace mf {

// What a sequence runs (Session::set_mode_expert): the gate over everything, the backbone alone
// (the original model), or one expert beside the backbone (the gate restricted to the two).
inline constexpr int kModeGated = -2, kModeBackbone = -1;

struct ModeLayout {
  std::vector<std::string> experts;  // domain names, in gate order (gate column j + 1)
  int n_layer_backbone = 0, n_block = 0, layers_per_expert = 0;
  int gate_top_k = 0;                // 0: dense gate
  std::vector<TensorView> gate_w;    // [n_block] of [1 + n_expert, n_embd] f32
  std::vector<TensorView> gate_b;    // [n_block] of [1 + n_expert] f32

  bool enabled() const { return n_block > 0; }
  int n_expert() const { return int(experts.size()); }
  int n_layer_extra() const { return n_expert() * n_block * layers_per_expert; }
  int first_layer(int b) const { return b * n_layer_backbone / n_block; }  // backbone layers [first(b), first(b + 1))
  int expert_layer(int j, int b, int l) const { return n_layer_backbone + (j * n_block + b) * layers_per_expert + l; }
  // kModeBackbone for "backbone", an expert's index for its name, kModeGated for "" or "auto";
  // mf::Error naming the known choices otherwise.
  int choice(const std::string& name) const;
  std::string choice_name(int choice) const;
};

// The gate weights a sequence's tokens received (Session::mode_gates): per block b and column c
// (0 the backbone, j + 1 expert j), the sum over its tokens, so that sum / tokens is the mean.
struct ModeGateTally {
  int n_block = 0, width = 0;  // width = 1 + n_expert
  std::vector<double> sum;     // [n_block, width]
  int64_t tokens = 0;
  double mean(int b, int c) const { return tokens > 0 ? sum[size_t(b * width + c)] / double(tokens) : 0.0; }
};

}  // namespace mf
