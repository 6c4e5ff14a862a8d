// Greedy generation until a stop string, as lm-evaluation-harness's generate_until runs it
// (GSM8K): many prompts decode side by side, one slot each, one token per step.
#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "eval/prompt_batcher.h"

namespace mf::eval {

struct GenRequest {
  std::vector<int32_t> prompt;  // >= 1 token
  Placement on;
};

struct GenOptions {
  std::vector<std::string> until;  // the text ends before the first of these
  int max_tokens = 256;            // generated tokens at most
  int64_t n_ctx = 0;               // window (<= 0: the model's training context); longer prompts lose their start
  int batch_slots = 16;
  Numerics numerics;
};

struct GenResult {
  std::string text;         // cut before the stop string
  int64_t tokens = 0;       // generated, including the one that completed a stop string
  std::string stop_reason;  // "stop", "eos", "length"
};

// Throws mf::Error on an empty prompt. on_progress(requests_done) after each batch.
std::vector<GenResult> generate_until(const Model& model, ThreadPool& pool, std::span<const GenRequest> requests,
                                      const GenOptions& options, const std::function<void(int64_t)>& on_progress = {},
                                      int64_t* tokens_run = nullptr);

}  // namespace mf::eval
