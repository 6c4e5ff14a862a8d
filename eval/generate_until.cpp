#include "eval/generate_until.h"

#include <algorithm>

#include "core/error.h"
#include "eval/prompt_batcher.h"

namespace mf::eval {

namespace {

// Position of the first stop string in text, or npos.
size_t find_stop(const std::string& text, const std::vector<std::string>& until) {
  size_t best = std::string::npos;
  for (const std::string& s : until)
    if (!s.empty()) best = std::min(best, text.find(s));
  return best;
}

}  // namespace

std::vector<GenResult> generate_until(const Model& model, ThreadPool& pool, std::span<const GenRequest> requests,
                                      const GenOptions& options, const std::function<void(int64_t)>& on_progress,
                                      int64_t* tokens_run) {
  std::vector<GenResult> results(requests.size());
  if (requests.empty()) return results;
  if (options.max_tokens < 1) fail("generation needs max_tokens >= 1");
  const Tokenizer& tok = model.require_tokenizer();
  const int64_t window = options.n_ctx > 0 ? options.n_ctx : model.hp.n_ctx_train;
  int64_t longest = 1;
  for (const GenRequest& r : requests) {
    if (r.prompt.empty()) fail("a generation request with an empty prompt");
    longest = std::max<int64_t>(longest, int64_t(r.prompt.size()));
  }
  const int64_t n_ctx = std::min<int64_t>(window, longest + options.max_tokens);
  if (n_ctx <= options.max_tokens) fail("a window of ", window, " tokens leaves no room for the prompt");
  PromptBatcher batcher(model, pool, n_ctx, options.batch_slots, options.numerics);
  const int32_t n_vocab = model.hp.n_vocab;
  const auto is_end = [&](int32_t t) {
    return t == tok.spec().eos_id || (size_t(t) < tok.spec().types.size() && tok.spec().types[size_t(t)] == TokenType::Control);
  };

  struct Active { size_t request; int slot; std::vector<int32_t> generated; int32_t next; bool done; };
  std::vector<Active> active;
  std::vector<std::vector<int32_t>> prompts_kept;
  std::vector<SlotPrompt> prompts;
  std::vector<SlotJob> jobs;
  std::vector<size_t> job_active;
  for (size_t first = 0; first < requests.size();) {
    const size_t last = std::min(requests.size(), first + size_t(batcher.work_slots()));
    active.clear();
    prompts_kept.clear();
    prompts.clear();
    for (size_t i = first; i < last; ++i) {
      const auto& p = requests[i].prompt;
      const int64_t keep = std::min<int64_t>(int64_t(p.size()), n_ctx - options.max_tokens);  // lm-eval drops the start
      prompts_kept.emplace_back(p.end() - keep, p.end());
    }
    for (size_t i = first; i < last; ++i) {
      const int slot = PromptBatcher::kFirstSlot + int(i - first);
      prompts.push_back(SlotPrompt{slot, prompts_kept[i - first], requests[i].on});
      active.push_back(Active{i, slot, {}, -1, false});
    }
    batcher.prefill(prompts, [&](size_t p, const float* logits) { active[p].next = RowLogProbs(logits, n_vocab).argmax(); });
    for (;;) {
      // Take each sequence's greedy token; decide whether it has finished.
      jobs.clear();
      job_active.clear();
      for (size_t a = 0; a < active.size(); ++a) {
        Active& s = active[a];
        if (s.done) continue;
        GenResult& out = results[s.request];
        if (is_end(s.next)) {
          s.done = true, out.stop_reason = "eos";
          continue;
        }
        s.generated.push_back(s.next);
        out.tokens = int64_t(s.generated.size());
        out.text = tok.decode(s.generated);
        const size_t stop = find_stop(out.text, options.until);
        if (stop != std::string::npos) {
          out.text.resize(stop);
          s.done = true, out.stop_reason = "stop";
        } else if (int64_t(s.generated.size()) >= options.max_tokens) {
          s.done = true, out.stop_reason = "length";
        } else {
          jobs.push_back(SlotJob{s.slot, std::span<const int32_t>(&s.next, 1), LogitRows::Last});
          job_active.push_back(a);
        }
      }
      if (jobs.empty()) break;
      batcher.run(jobs, [&](size_t j, int64_t, const float* logits, int64_t) {
        active[job_active[j]].next = RowLogProbs(logits, n_vocab).argmax();
      });
    }
    first = last;
    if (on_progress) on_progress(int64_t(first));
  }
  if (tokens_run) *tokens_run += batcher.tokens_run();
  return results;
}

}  // namespace mf::eval
