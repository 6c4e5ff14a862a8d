// Streams domain corpora through the engine and collects, through the forward hooks, the
// statistics that expert construction and routing need (see calib_stats.h).
#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "calib/calib_stats.h"
#include "core/thread_pool.h"
#include "model/model.h"

namespace mf {

struct DomainCorpus {
  std::string name;
  std::vector<std::string> files;  // UTF-8 text, concatenated in order
};

// Whether calibration also sums a a^T of the FFN activations (n_layer x n_ff^2 per domain).
enum class GramMode { Auto, On, Off };  // Auto: on when a domain's sums take at most kAutoGramBytes

// Which tokens a domain's budget takes when its corpus is longer: the first ones, or blocks
// spread evenly over the whole corpus (more documents for the same budget).
enum class CalibSampling { Head, Spread };

struct CalibOptions {
  int64_t tokens_per_domain = 65536;  // budget per domain (fewer if the corpus is shorter)
  int sample_tokens = 64;             // tokens per calibration sample (one embedding each)
  int micro_clusters = 16;            // K-means clusters per domain (upper bound on sub-domains)
  std::vector<int> embed_layers;      // empty: the default (see default_embed_layers)
  CalibSampling sampling = CalibSampling::Spread;
  GramMode gram = GramMode::Auto;
  uint64_t seed = 1234;
};

// Auto collects the Gram matrices when one domain's f64 accumulators fit in this many bytes.
constexpr int64_t kAutoGramBytes = int64_t(256) << 20;
// Whether calibration of this model collects them under `mode`.
bool collects_gram(const HParams& hp, GramMode mode);

// Called after each sample: domain index, tokens done in that domain, its token budget.
using CalibProgress = std::function<void(size_t domain, int64_t done, int64_t total)>;

// Throws mf::Error on an empty, unreadable or non-UTF-8 file, a duplicate domain, or a domain
// with fewer samples than micro-clusters.
CalibStats calibrate(const Model& model, const std::vector<DomainCorpus>& domains, const CalibOptions& opts,
                     ThreadPool& pool, const CalibProgress& progress = {});

// Tokens of a domain's files (no special tokens), documents joined by a blank line, at most
// max_tokens (later text is not tokenized). Every file is still checked to be non-empty UTF-8.
std::vector<int32_t> tokenize_corpus(const Model& model, const std::vector<std::string>& files,
                                     int64_t max_tokens = INT64_MAX);

// The calibration tokens of a domain: whole samples of sample_tokens, at most budget tokens.
// If the corpus has more, Head takes the first ones; Spread takes contiguous blocks of about
// 256 tokens (whole samples), tokenized from evenly spaced line starts of the joined text.
// Every file is checked to be non-empty UTF-8.
std::vector<int32_t> select_calibration_tokens(const Model& model, const std::vector<std::string>& files, int64_t budget,
                                        int sample_tokens, CalibSampling sampling);

// The routing embedding of a token sequence: per listed layer, the mean over tokens of the
// hidden state there (0: token embeddings), concatenated; runs a forward pass only if a
// layer above 0 is listed. [n_embd x layers.size()]
std::vector<float> sequence_embedding(const Model& model, std::span<const int32_t> tokens,
                                      const std::vector<int>& layers, ThreadPool& pool);

// The embedding layers used when none are given: the outputs of up to 4 evenly spaced blocks,
// ending with the last ({1, 2, 3, 4} for 4 layers, {8, 15, 23, 30} for 30).
std::vector<int> default_embed_layers(int64_t n_layer);

// Throws mf::Error unless layers is a non-empty list of distinct layers in 0..n_layer.
void check_embed_layers(const std::vector<int>& layers, int64_t n_layer, const std::string& what);

}  // namespace mf
