// Runs many prompts through one Session in batched forward steps, computing a prompt prefix
// shared with the previous batch's last prompt only once (its K and V are copied from a cache
// slot). Few-shot prompts of a task share their long example block, and every choice of a
// multiple-choice question shares the question: this is what makes evaluation cheap.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "model/session.h"

namespace mf::eval {

// Tokens run in a slot, appended to what the slot holds; logits of the rows asked for.
struct SlotJob {
  int slot = 1;
  std::span<const int32_t> tokens;
  LogitRows rows = LogitRows::Last;
};

// What a prompt runs on: an expert's layers (nullptr: the dense model) and an adapter (null: the
// model's own, model().adapter; a routed LoRA library with the prompt's own prior, for
// example). Only prompts on equal placements share a cached prefix.
struct Placement {
  const std::vector<LayerWeights>* layers = nullptr;
  std::shared_ptr<LinearAdapter> adapter;
  bool operator==(const Placement& o) const { return layers == o.layers && adapter == o.adapter; }
  bool operator<(const Placement& o) const {
    return layers != o.layers ? layers < o.layers : adapter.get() < o.adapter.get();
  }
  void apply(Session& session, int slot) const;
};

// A prompt to place in a slot: its cache is replaced by these tokens (reusing the cached prefix).
struct SlotPrompt {
  int slot = 1;
  std::span<const int32_t> tokens;  // >= 1 token
  Placement on;
};

class PromptBatcher {
 public:
  // n_ctx: tokens per slot; work_slots: slots for prompts (one more holds the prefix cache).
  PromptBatcher(const Model& model, ThreadPool& pool, int64_t n_ctx, int work_slots, const Numerics& numerics);

  Session& session() { return *session_; }
  int work_slots() const { return session_->n_slots() - 1; }
  int64_t n_ctx() const { return session_->n_ctx(); }
  // Slots usable for prompts: 1..work_slots().
  static constexpr int kFirstSlot = 1;
  // Tokens computed so far and tokens taken from the prefix cache instead (statistics).
  int64_t tokens_run() const { return tokens_run_; }
  int64_t tokens_reused() const { return tokens_reused_; }

  // Places each prompt in its slot (at most once each) and runs it; on_last(i, logits [n_vocab])
  // gets the logits after prompt i's last token. Afterwards the last prompt becomes the prefix cache.
  void prefill(std::span<const SlotPrompt> prompts, const std::function<void(size_t, const float*)>& on_last);

  // Runs jobs (each slot at most once), chunked so that a step has at most Session::kMaxBatch
  // tokens. on_rows(job, first, logits, n): logits [n, n_vocab] of tokens first..first+n-1 of
  // that job (All), or of its last token (Last, first = its index, n = 1).
  void run(std::span<const SlotJob> jobs,
           const std::function<void(size_t, int64_t, const float*, int64_t)>& on_rows);

 private:
  std::unique_ptr<Session> session_;
  std::vector<int32_t> cache_tokens_;  // what slot 0 holds
  Placement cache_on_;  // what slot 0's cache was computed on
  int64_t tokens_run_ = 0, tokens_reused_ = 0;
};

// log softmax(logits)[t] for several targets of one row, in double.
struct RowLogProbs {
  RowLogProbs(const float* logits, int32_t n_vocab);
  double logprob(int32_t token) const { return double(logits_[token]) - lse_; }
  bool is_argmax(int32_t token) const { return token == argmax_; }
  int32_t argmax() const { return argmax_; }

 private:
  const float* logits_;
  double lse_ = 0;
  int32_t argmax_ = 0;
};

}  // namespace mf::eval
