// Perplexity over consecutive windows: ppl = exp(mean NLL of every token of a window but
// its first, given its prefix in that window).
#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "core/thread_pool.h"
#include "model/model.h"

namespace mf {

struct PerplexityResult {
  int64_t tokens = 0;   // tokens in the text
  int64_t scored = 0;   // tokens whose NLL was counted
  int64_t windows = 0;
  double mean_nll = 0;
  double ppl = 0;
};

// Which tokens of a window are scored. The default: every token but the first, in windows
// that cover the text (the last may be short). llama.cpp's llama-perplexity instead keeps only
// whole windows, puts BOS in each window's first position, and scores the second half only
// (each scored token has at least ctx/2 tokens of context).
struct PerplexityProtocol {
  bool second_half_only = false;  // score positions ctx/2 + 1 .. ctx - 1; whole windows only
  int32_t window_bos = -1;        // >= 0: this token replaces each window's first token
  bool f32 = false;               // f32 throughout (Numerics all off), for comparisons with transformers
};

// Layers to run a window with (nullptr: the dense model); lets a MoE route each window.
using WindowLayers = std::function<const std::vector<LayerWeights>*(std::span<const int32_t> window)>;

// on_progress(tokens_done, running_ppl) is called after each evaluated chunk.
PerplexityResult compute_perplexity(const Model& model, const std::vector<int32_t>& tokens, int64_t ctx, ThreadPool& pool,
                                    const std::function<void(int64_t, double)>& on_progress = {},
                                    const WindowLayers& layers = {}, const PerplexityProtocol& protocol = {});

// -log softmax(logits)[target], accumulated in double.
double token_nll(const float* logits, int32_t n_vocab, int32_t target);

}  // namespace mf
