// Stage 3 of expert construction (expert.h): an expert's own FFN weights and the views a
// Session runs. neurons: each layer's compact FFN (CompactFfn) as dense matrices in the dense
// layer's dtypes: gate and up rows copied byte for byte (re-fitted rows quantised), ffn_down
// [n_embd, k] quantised, the bias in f32. dowp: Free-MoE's Domain-Oriented Weight
// Purification (docs/moe.md) on the full-size matrices instead: in each output row the weights
// with the lowest |W_ij| * ||X_j|| zeroed and the survivors optionally rescaled.
#pragma once
#include <cstdint>
#include <vector>

#include "moe/expert.h"

namespace mf {

struct LayoutOptions {
  bool dowp = false;                    // purify the full-size matrices instead of compact neurons
  double density = 0.5;                 // dowp: the part of each row's weights kept, in (0, 1]
  DowpScale scale = DowpScale::Energy;  // dowp: how the survivors are rescaled
};

// An expert named by the spec, its layers still the dense model's views, no weights yet.
Expert start_expert(const Model& model, const ExpertSpec& spec);

// Lays layer `layer` of e out as the compact FFN on `kept` (its ascending dense neuron ids;
// layers in order): writes its buffers, points e.layers[layer]'s FFN views (and ffn_down_b
// when ffn has a bias) at them and records kept in e.neurons.
void lay_out_layer(const LayerWeights& dense, const CompactFfn& ffn, std::vector<int32_t> kept, int layer, Expert& e);

// dowp: every layer's gate, up and down of e purified from the spec's statistics (ffn_in_sq
// for gate and up, act_sq for down). Throws mf::Error without them.
void purify_layers(const Model& model, const ExpertSpec& spec, const LayoutOptions& opts, Expert& e);

// One matrix W [n_out, n_in] given its inputs' sum of squares x_sq [n_in]: per output row
// ("patch"), score S_ij = |W_ij| * ||X_j||, keep the top round(density*n_in) (theta_i = the
// smallest kept score), zero the rest, and with DowpScale::Energy rescale the survivors by
// alpha_i = sqrt(sum_j W_ij^2 x_j^2 / sum_kept W_ij^2 x_j^2). The bytes of [n_out, n_in] in W's dtype.
std::vector<uint8_t> purify_matrix(const TensorView& w, const std::vector<float>& x_sq, double density, DowpScale scale);

}  // namespace mf
