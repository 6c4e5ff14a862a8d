// Log-likelihood of continuations given a context, as lm-evaluation-harness computes it for
// multiple-choice tasks: the sum over the continuation's tokens of log p(token | context and
// the continuation's earlier tokens), and whether every token was the greedy choice.
#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "eval/prompt_batcher.h"

namespace mf::eval {

struct LlRequest {
  std::vector<int32_t> context;                     // >= 1 token, shared by every continuation
  std::vector<std::vector<int32_t>> continuations;  // each >= 1 token
  Placement on;  // the dense model and the model's own adapter unless set
};

struct LlResult {
  std::vector<double> loglikelihood;  // [n_continuations]
  std::vector<uint8_t> is_greedy;     // [n_continuations]
  int64_t context_tokens = 0;         // after truncation to the context window
};

struct ScoreOptions {
  int64_t n_ctx = 0;       // window (<= 0: the model's training context); longer contexts lose their start
  int batch_slots = 16;    // sequences per forward step (each continuation of a question takes one)
  Numerics numerics;
};

struct ScoreStats {
  int64_t tokens_run = 0, tokens_reused = 0;  // computed, and taken from a shared prefix instead
};

// Scores every request. Each question's context runs once and its cache is copied to one slot
// per continuation; a context prefix shared with the previous batch is not run again.
// on_progress(requests_done) after each batch. Throws mf::Error on an empty context or
// continuation, or a continuation longer than the window.
std::vector<LlResult> score_loglikelihood(const Model& model, ThreadPool& pool, std::span<const LlRequest> requests,
                                          const ScoreOptions& options,
                                          const std::function<void(int64_t)>& on_progress = {},
                                          ScoreStats* stats = nullptr);

}  // namespace mf::eval
