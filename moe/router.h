// The multi-level router: a softmax-regression domain classifier over a prompt's embedding
// (trained with cross-entropy on the calibration embeddings), then the nearest K-means
// sub-domain centroid of that domain. Low confidence falls back to the dense model.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "calib/calib_stats.h"

namespace mf {

class GgufWriter;
class GgufFile;

struct RouteDecision {
  int domain = -1;          // argmax domain (reported even when falling back to dense)
  int subdomain = -1;
  double confidence = 0;    // softmax probability of `domain`
  bool dense = true;        // confidence below the threshold: run the dense model
  std::vector<float> probs; // [n_domain]
};

struct RouterTrainOptions {
  int iterations = 400;
  double learning_rate = 0.05;  // Adam
  double l2 = 1e-4;
  uint64_t seed = 7;
};

struct Router {
  std::vector<std::string> domains;
  int64_t dim = 0;
  std::vector<int> embed_layers;  // as CalibStats::embed_layers; dim = n_embd x count
  int subdomains = 1;              // K per domain
  float threshold = 0.5f;          // minimum confidence to use an expert
  std::vector<float> mean, inv_std;  // [dim] feature standardisation
  std::vector<float> weight;         // [n_domain, dim]
  std::vector<float> bias;           // [n_domain]
  std::vector<float> centroids;      // [n_domain, K, dim] in raw embedding space

  int n_domain() const { return int(domains.size()); }
  RouteDecision route(const float* embedding) const;  // [dim]
  std::vector<float> domain_probs(const float* embedding) const;

  void write(GgufWriter& w) const;  // tensors moe.router.* and keys moeforge.moe.router.*
  static Router read(const GgufFile& g, const std::string& label);
};

// Trains the classifier on every calibration sample (classes weighted equally), and merges
// each domain's micro-clusters into K sub-domains by weighted K-means on their centroids.
// Returns, per domain, the sub-domain of each micro-cluster ([n_domain][n_micro]).
Router train_router(const CalibStats& stats, int subdomains, const RouterTrainOptions& opts,
                    std::vector<std::vector<int>>* micro_to_sub);

}  // namespace mf
