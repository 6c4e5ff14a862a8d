#include "eval/prompt_batcher.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace mf::eval {

void Placement::apply(Session& session, int slot) const {
  session.set_layers(slot, layers);
  session.set_adapter(slot, adapter ? adapter.get() : session.model().adapter.get());
}

PromptBatcher::PromptBatcher(const Model& model, ThreadPool& pool, int64_t n_ctx, int work_slots,
                             const Numerics& numerics) {
  if (work_slots < 1) fail("a prompt batcher needs at least one work slot");
  session_ = std::make_unique<Session>(model, int(n_ctx), pool, work_slots + 1);
  session_->set_numerics(numerics);
}

void PromptBatcher::prefill(std::span<const SlotPrompt> prompts,
                            const std::function<void(size_t, const float*)>& on_last) {
  if (prompts.empty()) return;
  std::vector<SlotJob> jobs;
  jobs.reserve(prompts.size());
  for (const SlotPrompt& p : prompts) {
    if (p.tokens.empty()) fail("an empty prompt");
    if (p.slot < kFirstSlot || p.slot > work_slots()) fail("prompt slot ", p.slot, " is outside 1..", work_slots());
    if (int64_t(p.tokens.size()) > n_ctx()) fail("a prompt of ", p.tokens.size(), " tokens exceeds the context of ", n_ctx());
    p.on.apply(*session_, p.slot);
    // The longest common prefix with the cache, leaving at least one token to run (its logits).
    int64_t lcp = 0;
    if (p.on == cache_on_) {
      const int64_t limit = std::min<int64_t>(int64_t(p.tokens.size()) - 1, int64_t(cache_tokens_.size()));
      while (lcp < limit && cache_tokens_[size_t(lcp)] == p.tokens[size_t(lcp)]) ++lcp;
    }
    session_->copy_prefix(0, p.slot, lcp);
    tokens_reused_ += lcp;
    jobs.push_back(SlotJob{p.slot, p.tokens.subspan(size_t(lcp)), LogitRows::Last});
  }
  run(jobs, [&](size_t j, int64_t, const float* logits, int64_t) { on_last(j, logits); });
  const SlotPrompt& last = prompts.back();
  last.on.apply(*session_, 0);
  session_->copy_prefix(last.slot, 0, int64_t(last.tokens.size()));
  cache_tokens_.assign(last.tokens.begin(), last.tokens.end());
  cache_on_ = last.on;
}

void PromptBatcher::run(std::span<const SlotJob> jobs,
                        const std::function<void(size_t, int64_t, const float*, int64_t)>& on_rows) {
  const int32_t n_vocab = session_->model().hp.n_vocab;
  std::vector<int64_t> done(jobs.size(), 0);
  size_t next = 0;  // jobs before it are finished
  std::vector<SeqInput> step;
  struct Part { size_t job; int64_t first, n; LogitRows rows; };
  std::vector<Part> parts;
  while (next < jobs.size()) {
    step.clear();
    parts.clear();
    int64_t budget = Session::kMaxBatch;
    for (size_t j = next; j < jobs.size() && budget > 0; ++j) {
      const int64_t left = int64_t(jobs[j].tokens.size()) - done[j];
      if (left <= 0) continue;
      const int64_t n = std::min(left, budget);
      const bool final_chunk = n == left;
      const LogitRows rows = jobs[j].rows == LogitRows::All ? LogitRows::All
                             : (final_chunk && jobs[j].rows == LogitRows::Last) ? LogitRows::Last
                                                                                : LogitRows::None;
      step.push_back(SeqInput{jobs[j].slot, jobs[j].tokens.subspan(size_t(done[j]), size_t(n)), rows});
      parts.push_back(Part{j, done[j], n, rows});
      budget -= n;
    }
    const float* logits = session_->step(step);  // [rows asked, n_vocab]
    for (const Part& p : parts) {
      tokens_run_ += p.n;
      done[p.job] += p.n;
      if (p.rows == LogitRows::All) {
        on_rows(p.job, p.first, logits, p.n);
        logits += p.n * n_vocab;
      } else if (p.rows == LogitRows::Last) {
        on_rows(p.job, p.first + p.n - 1, logits, 1);
        logits += n_vocab;
      }
    }
    while (next < jobs.size() && done[next] >= int64_t(jobs[next].tokens.size())) ++next;
  }
}

RowLogProbs::RowLogProbs(const float* logits, int32_t n_vocab) : logits_(logits) {
  float mx = logits[0];
  for (int32_t i = 1; i < n_vocab; ++i)
    if (logits[i] > mx) mx = logits[i], argmax_ = i;
  double sum = 0;
  for (int32_t i = 0; i < n_vocab; ++i) sum += std::exp(double(logits[i]) - double(mx));
  lse_ = double(mx) + std::log(sum);
}

}  // namespace mf::eval
