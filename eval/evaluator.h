// Runs tasks on a model and scores them as lm-evaluation-harness does: multiple choice by the
// summed log-likelihood of each choice (acc, and acc_norm by the choice's length), GSM8K by
// greedy generation and exact match of the final number, WikiText by rolling log-likelihood
// (word perplexity, bits per byte). Every document is routed first (a .moe picks an expert
// per prompt, as it would for a user's request).
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/prompt_batcher.h"
#include "eval/tasks.h"
#include "model/session.h"

namespace mf::eval {

// Where a prompt runs: an expert's layers, or the dense model (layers == nullptr); and an
// adapter made for this prompt (a LoRA library with the prompt's own prior), or the model's own
// (null). name: what the report counts documents under.
struct RouteChoice {
  const std::vector<LayerWeights>* layers = nullptr;
  std::string name = "dense";
  std::shared_ptr<LinearAdapter> adapter;
  Placement placement() const { return Placement{layers, adapter}; }
};
using PromptRouter = std::function<RouteChoice(std::span<const int32_t> prompt)>;

struct EvalOptions {
  int shots = -1;        // few-shot examples (-1: the task's default)
  int64_t limit = 0;     // the first N documents of each task (of each MMLU subject); 0: all
  int batch_slots = 16;  // sequences per forward step
  int64_t n_ctx = 0;     // window (<= 0: the model's, at most 2048 for WikiText)
  int max_gen_tokens = 0;  // generation tasks (0: the task's default)
  Numerics numerics;
};

struct Metric {
  double value = 0;
  double stderr_ = 0;  // standard error of the mean (0 when not defined)
};

struct TaskResult {
  std::string task;
  std::string kind;  // multiple_choice | generate_until | loglikelihood_rolling
  int shots = 0;
  int64_t n = 0;     // documents
  std::map<std::string, Metric> metrics;
  // MMLU: "stem", "humanities", ... and each subject, each with acc; plus "macro" (the mean
  // of the subjects' acc).
  std::map<std::string, Metric> groups;
  std::map<std::string, int64_t> routes;  // expert name -> documents
  std::vector<nlohmann::json> records;    // one per document
  double seconds = 0;
  int64_t tokens_run = 0, tokens_reused = 0;
};

using EvalProgress = std::function<void(int64_t done, int64_t total)>;

TaskResult evaluate_mc(const Model& model, ThreadPool& pool, const McTask& task, const EvalOptions& options,
                       const PromptRouter& route, const EvalProgress& progress = {});
TaskResult evaluate_generation(const Model& model, ThreadPool& pool, const GenTask& task, const EvalOptions& options,
                               const PromptRouter& route, const EvalProgress& progress = {});
// WikiText-2 raw text: split into articles at their " = Title = " lines, each scored in
// disjoint windows as lm-eval's loglikelihood_rolling does.
TaskResult evaluate_wikitext(const Model& model, ThreadPool& pool, const std::string& name, const std::string& text,
                             const EvalOptions& options, const PromptRouter& route, const EvalProgress& progress = {});

// lm-eval's split of a context and continuation into tokens (_encode_pair): trailing
// whitespace of the context moves to the continuation; the continuation's tokens are those of
// context + continuation after the context's own. BOS as the tokenizer adds it.
struct EncodedPair {
  std::vector<int32_t> context, continuation;
};
EncodedPair encode_pair(const Tokenizer& tok, const std::string& context, const std::string& continuation);

// Mean and its standard error (sample standard deviation / sqrt(n), as lm-eval's mean_stderr).
Metric mean_with_stderr(const std::vector<double>& x);

// Index of the largest value (the first on ties, as numpy's argmax).
size_t argmax_index(const std::vector<double>& x);

// lm-eval's get_rolling_token_windows + make_disjoint_window with context_len 1: (context,
// continuation) pairs that score every token of `tokens` once, the first given `prefix`.
std::vector<std::pair<std::vector<int32_t>, std::vector<int32_t>>> rolling_windows(const std::vector<int32_t>& tokens,
                                                                                   int32_t prefix, int64_t max_len);

}  // namespace mf::eval
