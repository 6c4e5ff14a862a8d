// Calibration statistics of one model on several domain corpora, and their file format.
// The file is GGUF (tensors + metadata), versioned and tied to the model by fingerprint.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/model.h"

namespace mf {

// Sums over the tokens of one (domain, micro-cluster); divide by n_tokens for means.
struct LayerStats {
  std::vector<float> attn_in_sq;   // [n_embd]   sum x^2 of the input channels of wq/wk/wv
  std::vector<float> attn_out_sq;  // [n_embd_q] sum x^2 of the input channels of wo
  std::vector<float> ffn_in_sq;    // [n_embd]   sum x^2 of the input channels of ffn_gate/up
  std::vector<float> act_sq;       // [n_ff]     sum a^2 of the FFN activations (ffn_down's input)
  std::vector<float> act_abs;      // [n_ff]     sum |a|
  std::vector<float> act_sum;      // [n_ff]     sum a (signed: the mean that compensation restores)
  int64_t tokens = 0;              // tokens summed

  void resize(int64_t n_embd, int64_t n_embd_q, int64_t n_ff);
  void add(const LayerStats& o);
};

// Calibration samples of a domain are grouped into micro-clusters by K-means on their
// embeddings; build-moe merges micro-clusters into the requested number of sub-domains.
struct ClusterStats {
  int64_t n_tokens = 0, n_samples = 0;
  std::vector<float> centroid;     // [dim]
  std::vector<LayerStats> layers;  // [n_layer]
};

struct DomainStats {
  std::string name;
  std::vector<ClusterStats> clusters;
  std::vector<float> embeddings;      // [n_samples, dim] one per calibration sample
  std::vector<int32_t> sample_cluster;  // [n_samples]
  // Per layer, sum over all the domain's tokens of a a^T for the FFN activations a (ffn_down's
  // input): the second moments that the least-squares re-fit of ffn_down needs. Empty when
  // calibrated without them (see CalibOptions::gram).
  std::vector<std::vector<float>> act_gram;  // [n_layer][n_ff * n_ff] row-major, symmetric
  // The calibration samples' token ids in corpus order, sample i at [i * sample_tokens, ...):
  // what a sequential re-fit runs through partly built experts. Empty in version-4 files.
  std::vector<int32_t> tokens;  // [n_samples * sample_tokens]
  int64_t n_samples() const { return int64_t(sample_cluster.size()); }
  int64_t n_tokens() const;
  LayerStats pooled_layer(int layer) const;  // sums over all clusters
};

struct CalibStats {
  // 3: a list of embedding layers; 4: FFN activation Gram matrices; 5: the samples' token ids.
  static constexpr int kVersion = 5;
  static constexpr int kOldestReadable = 4;  // version 4 loads without token ids
  std::string model_fingerprint;  // fingerprint_hex(model_fingerprint(model))
  std::string model_path;         // informational
  std::string sampling = "head";  // informational: which tokens of a longer corpus were used (head | spread)
  // The routing embedding concatenates, per listed layer L, the mean over a sample's tokens
  // of the token embeddings (L = 0) or of block L-1's output (L > 0). dim = n_embd x count.
  std::vector<int> embed_layers;
  int sample_tokens = 0;          // tokens per calibration sample
  int64_t dim = 0, n_layer = 0, n_embd = 0, n_embd_q = 0, n_ff = 0;
  std::vector<DomainStats> domains;

  // Throws mf::Error when the stats were computed on another model.
  void check_model(const Model& model) const;
  int domain_index(const std::string& name) const;  // -1 if absent
  bool has_gram() const { return !domains.empty() && !domains[0].act_gram.empty(); }
  bool has_tokens() const { return !domains.empty() && !domains[0].tokens.empty(); }
};

// Atomic write; load throws mf::Error naming the file on a bad or foreign file.
void save_calib_stats(const CalibStats& s, const std::string& path);
CalibStats load_calib_stats(const std::string& path);

}  // namespace mf
