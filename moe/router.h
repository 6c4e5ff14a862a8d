// The multi-level router: a domain classifier over a prompt's embedding (a one-hidden-layer
// ReLU MLP, or softmax regression with no hidden layer, trained with cross-entropy on the
// calibration embeddings), then the nearest K-means sub-domain centroid of that domain. Low
// confidence falls back to the dense model.
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

// Defaults chosen on held-out blocks of the calibration samples (docs/moe.md). The linear
// router (hidden = 0) did best there with learning_rate 0.01 and weight_decay 0.01.
struct RouterTrainOptions {
  int hidden = 256;               // hidden ReLU units of the domain classifier (0: softmax regression)
  int max_epochs = 30;            // minibatch epochs; the learning rate decays to 0 over them (cosine)
  int batch_size = 256;
  double learning_rate = 3e-3;    // Adam
  double weight_decay = 0.3;      // decoupled (AdamW), on weights only
  double holdout_fraction = 0.1;  // of each domain's samples, held out to measure (and stop early) (0: none)
  int holdout_blocks = 8;         // contiguous held-out blocks per domain: neighbouring samples share a document
  int patience = 0;               // > 0: stop after this many epochs without a better hold-out loss and keep
                                  // the best epoch; 0: keep the last epoch (did better with the cosine decay)
  uint64_t seed = 7;              // initialisation, shuffles and K-means
};

// How the domain classifier's training went (accuracies are class-balanced).
struct RouterTrainReport {
  int64_t train_samples = 0, holdout_samples = 0;
  int epochs = 0;                  // epochs run
  int best_epoch = 0;              // the kept parameters' epoch (the last one unless stopping early)
  double train_accuracy = 0;       // on the training samples
  double holdout_accuracy = 0;     // on the held-out blocks, at best_epoch (0 without hold-out)
  double holdout_loss = 0;         // class-balanced cross-entropy there
  std::vector<double> epoch_holdout_loss, epoch_holdout_accuracy;  // [epochs]
  double seconds = 0;
};

struct Router {
  std::vector<std::string> domains;
  int64_t dim = 0;
  std::vector<int> embed_layers;  // as CalibStats::embed_layers; dim = n_embd x count
  int subdomains = 1;              // K per domain
  float threshold = 0.5f;          // minimum confidence to use an expert
  std::vector<float> mean, inv_std;  // [dim] feature standardisation
  int64_t n_hidden = 0;              // hidden units (0: the output layer reads the features)
  std::vector<float> hidden_weight;  // [n_hidden, dim]
  std::vector<float> hidden_bias;    // [n_hidden]
  std::vector<float> weight;         // [n_domain, n_hidden], or [n_domain, dim] when n_hidden = 0
  std::vector<float> bias;           // [n_domain]
  std::vector<float> centroids;      // [n_domain, K, dim] in raw embedding space

  int n_domain() const { return int(domains.size()); }
  RouteDecision route(const float* embedding) const;  // [dim]
  std::vector<float> domain_probs(const float* embedding) const;

  void write(GgufWriter& w) const;  // tensors moe.router.* and keys moeforge.moe.router.*
  static Router read(const GgufFile& g, const std::string& label);
};

// The held-out samples of a domain's n (in corpus order): round(fraction * n) of them (at
// least 1 when fraction > 0 and n >= 2) in `blocks` contiguous runs, each centred in one of
// `blocks` equal segments. Contiguous, since consecutive samples come from the same document
// and a random split would leak it. Returns [n] flags.
std::vector<char> holdout_mask(int64_t n, double fraction, int blocks);

// Trains the classifier on the calibration samples (classes weighted equally) but held-out
// blocks of them, on which it is measured (and optionally stopped early), and merges each domain's
// micro-clusters into K sub-domains by weighted K-means on their centroids. Returns, per
// domain, the sub-domain of each micro-cluster ([n_domain][n_micro]). Same seed, same router.
Router train_router(const CalibStats& stats, int subdomains, const RouterTrainOptions& opts,
                    std::vector<std::vector<int>>* micro_to_sub, RouterTrainReport* report = nullptr);

}  // namespace mf
