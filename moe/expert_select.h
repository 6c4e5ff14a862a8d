// Stage 1 of expert construction (expert.h): which FFN neurons each layer of an expert keeps.
// rank_neurons orders every layer's neurons once, by a score or by structured OBS, with the
// shared neurons every expert keeps ahead of the rest; select_neurons then takes a layer's top
// `width` once the widths are known (expert_compensate.h), or in a sequential re-fit runs OBS
// again on the moments of the expert's own activations. A new way of choosing neurons is a
// new ranking here.
#pragma once
#include <cstdint>
#include <vector>

#include "moe/expert.h"
#include "moe/sequential_refit.h"

namespace mf {

struct SelectOptions {
  double density = 0.5;  // the uniform width: neurons_for_density(density)
  NeuronScore score = NeuronScore::Activation;
  bool centered = false;         // Activation: score the variance (the compensation restores the mean)
  bool obs = false;              // rank by structured OBS on spec.gram instead of by score
  double damp = 0.001;           // OBS's ridge: the least-squares re-fit's (down_refit.h)
  double shared_fraction = 0.0;  // part of the uniform width chosen from pooled importance, first
  uint64_t seed = 1;             // NeuronScore::Random
};

// Every layer's order of preference, from which the kept set of any width follows.
struct NeuronRanking {
  int64_t k = 0;                             // the uniform width
  std::vector<std::vector<double>> scores;   // [n_layer][n_ff] higher = kept first
  std::vector<std::vector<int32_t>> forced;  // [n_layer][<= k] shared neurons, kept before any score
};

// down: the dense ffn_down of every layer (dense_down), [n_layer][n_embd * n_ff]. `pooled`
// (sum over all domains, [n_layer]) is needed for shared_fraction > 0. Throws mf::Error when
// the ranking needs what the spec lacks: activation statistics, or Gram matrices for OBS.
NeuronRanking rank_neurons(const Model& model, const ExpertSpec& spec, const std::vector<std::vector<float>>& down,
                           const SelectOptions& opts, const std::vector<LayerStats>* pooled);

// Layer `layer`'s kept neurons at `width`, ascending: its top `width` by the ranking; with OBS
// and a sequential re-fit's `moments` of that layer, OBS's choice on those moments instead
// (the same forced neurons; the ranking's order if they alone exceed the width).
std::vector<int32_t> select_neurons(const NeuronRanking& ranking, int layer, int64_t width, const SelectOptions& opts,
                                    const RefitMoments* moments = nullptr);

// Neuron scores [n_ff] of a layer (higher = more important).
// centered: Activation scores use the variance instead of the second moment.
std::vector<double> neuron_scores(const Model& model, int layer, const LayerStats* stats, NeuronScore score,
                                  uint64_t seed, bool centered = false);
// Indices of the k highest scores, ascending; `forced` ids come first in the budget.
std::vector<int32_t> top_k_neurons(const std::vector<double>& scores, int64_t k, const std::vector<int32_t>& forced = {});
// Neurons kept at a density: k = round(density*n_ff), at least 1, rounded up to whole
// quantisation blocks when the weights are quantised (so compact rows stay whole blocks).
int64_t neurons_for_density(const Model& model, double density);

}  // namespace mf
