#include "eval/loglikelihood.h"

#include <algorithm>

#include "core/error.h"
#include "eval/prompt_batcher.h"

namespace mf::eval {

namespace {

// The window the requests need (the context plus every continuation token but the last).
int64_t needed_ctx(std::span<const LlRequest> requests) {
  int64_t need = 1;
  for (const LlRequest& r : requests) {
    int64_t longest = 0;
    for (const auto& c : r.continuations) longest = std::max<int64_t>(longest, int64_t(c.size()));
    need = std::max<int64_t>(need, int64_t(r.context.size()) + longest - 1);
  }
  return need;
}

}  // namespace

std::vector<LlResult> score_loglikelihood(const Model& model, ThreadPool& pool, std::span<const LlRequest> requests,
                                          const ScoreOptions& options, const std::function<void(int64_t)>& on_progress,
                                          ScoreStats* stats) {
  std::vector<LlResult> results(requests.size());
  if (requests.empty()) return results;
  size_t max_choices = 1;
  for (const LlRequest& r : requests) {
    if (r.context.empty()) fail("a log-likelihood request with an empty context");
    if (r.continuations.empty()) fail("a log-likelihood request without continuations");
    for (const auto& c : r.continuations)
      if (c.empty()) fail("a log-likelihood request with an empty continuation");
    max_choices = std::max(max_choices, r.continuations.size());
  }
  const int64_t window = options.n_ctx > 0 ? options.n_ctx : model.hp.n_ctx_train;
  PromptBatcher batcher(model, pool, std::min(window, needed_ctx(requests)),
                        std::max<int>(options.batch_slots, int(max_choices)), options.numerics);
  const int32_t n_vocab = model.hp.n_vocab;

  std::vector<std::vector<int32_t>> contexts;  // this batch's (possibly truncated) contexts
  std::vector<SlotPrompt> prompts;
  std::vector<SlotJob> jobs;
  std::vector<std::pair<size_t, size_t>> job_owner;  // (request, continuation)
  size_t first = 0;
  while (first < requests.size()) {
    // A batch: whole questions, one slot per continuation.
    size_t last = first;
    int slots = 0;
    while (last < requests.size() && slots + int(requests[last].continuations.size()) <= batcher.work_slots())
      slots += int(requests[last++].continuations.size());
    contexts.clear();
    prompts.clear();
    int slot = PromptBatcher::kFirstSlot;
    for (size_t i = first; i < last; ++i) {
      const LlRequest& r = requests[i];
      int64_t longest = 0;
      for (const auto& c : r.continuations) longest = std::max<int64_t>(longest, int64_t(c.size()));
      if (longest > batcher.n_ctx()) fail("a continuation of ", longest, " tokens exceeds the window of ", batcher.n_ctx());
      // lm-eval keeps the last max_length tokens of context + continuation: drop the oldest context.
      const int64_t keep = std::min<int64_t>(int64_t(r.context.size()), batcher.n_ctx() - longest + 1);
      contexts.emplace_back(r.context.end() - keep, r.context.end());
      results[i].context_tokens = keep;
      results[i].loglikelihood.assign(r.continuations.size(), 0.0);
      results[i].is_greedy.assign(r.continuations.size(), 1);
      prompts.push_back(SlotPrompt{slot, contexts.back(), r.on});
      slot += int(r.continuations.size());
    }
    // The context's last logits score every continuation's first token.
    batcher.prefill(prompts, [&](size_t p, const float* logits) {
      const size_t i = first + p;
      const RowLogProbs row(logits, n_vocab);
      for (size_t c = 0; c < requests[i].continuations.size(); ++c) {
        const int32_t t = requests[i].continuations[c][0];
        results[i].loglikelihood[c] += row.logprob(t);
        results[i].is_greedy[c] &= uint8_t(row.is_argmax(t));
      }
    });
    // Each continuation continues the context in its own slot: it runs all its tokens but the
    // last, whose logits score the next one.
    jobs.clear();
    job_owner.clear();
    for (size_t p = 0; p < prompts.size(); ++p) {
      const size_t i = first + p;
      const auto& conts = requests[i].continuations;
      for (size_t c = 0; c < conts.size(); ++c) {
        if (conts[c].size() < 2) continue;
        const int s = prompts[p].slot + int(c);
        requests[i].on.apply(batcher.session(), s);
        batcher.session().copy_prefix(prompts[p].slot, s, int64_t(prompts[p].tokens.size()));
        jobs.push_back(SlotJob{s, std::span<const int32_t>(conts[c]).first(conts[c].size() - 1), LogitRows::All});
        job_owner.emplace_back(i, c);
      }
    }
    batcher.run(jobs, [&](size_t j, int64_t tok0, const float* logits, int64_t n) {
      const auto [i, c] = job_owner[j];
      const std::vector<int32_t>& cont = requests[i].continuations[c];
      for (int64_t k = 0; k < n; ++k) {
        const RowLogProbs row(logits + k * n_vocab, n_vocab);  // predicts token tok0 + k + 1
        const int32_t t = cont[size_t(tok0 + k + 1)];
        results[i].loglikelihood[c] += row.logprob(t);
        results[i].is_greedy[c] &= uint8_t(row.is_argmax(t));
      }
    });
    first = last;
    if (on_progress) on_progress(int64_t(first));
  }
  if (stats) stats->tokens_run += batcher.tokens_run(), stats->tokens_reused += batcher.tokens_reused();
  return results;
}

}  // namespace mf::eval
