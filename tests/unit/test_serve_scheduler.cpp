// The continuous-batching scheduler on the default model: concurrent greedy requests equal the
// same requests run alone, the queue is bounded, cancellation frees the slot, stop strings,
// seeded sampling and refusals.
#include <gtest/gtest.h>

#include <thread>

#include "core/error.h"
#include "serve/scheduler.h"
#include "test_serve_util.h"
#include "test_util.h"

namespace mf::serve {
namespace {

const char* kModel = "models/default";

struct Result {
  std::string text, reason;
  int completion_tokens = 0;
};

Result collect(const std::shared_ptr<Generation>& g) {
  Result r;
  for (;;) {
    GenerationUpdate u = g->wait(std::chrono::seconds(5));
    r.text += u.text;
    if (u.done) {
      r.reason = u.finish_reason;
      r.completion_tokens = u.completion_tokens;
      return r;
    }
  }
}

Job greedy_job(const Tokenizer& tok, const std::string& prompt, int max_tokens) {
  Job j;
  j.prompt = tok.encode(prompt, true);
  j.max_tokens = max_tokens;
  j.sampler.temperature = 0;
  return j;
}

const std::vector<std::string> kPrompts = {
    "def read_config(path):", "Question: A shop sells 4 pens for 2 dollars each. How much do the pens cost?\\nAnswer:",
    "And it came to pass, when the", "The module provides", "import os", "It was", "x", "The quick brown fox jumps over"};

TEST(ServeScheduler, ConcurrentGreedyEqualsAlone) {
  auto m = load_model(kModel);
  const Tokenizer& tok = m->require_tokenizer();
  ThreadPool pool(2), ref_pool(1);  // a pool serves one thread at a time: the scheduler owns `pool`
  SchedulerOptions o;
  o.n_parallel = 3;  // fewer slots than jobs: some wait, then join running batches
  o.n_ctx = 128;
  Scheduler sched(*m, pool, o);
  std::vector<std::shared_ptr<Generation>> gens;
  for (size_t i = 0; i < kPrompts.size(); ++i) gens.push_back(sched.submit(greedy_job(tok, kPrompts[i], 12 + 5 * int(i))));
  for (size_t i = 0; i < kPrompts.size(); ++i) {
    ASSERT_TRUE(gens[i]);
    Result r = collect(gens[i]);
    const int max_tokens = 12 + 5 * int(i);
    std::string want = test::greedy_text(*m, ref_pool, tok.encode(kPrompts[i], true), max_tokens);
    EXPECT_EQ(r.text, want) << kPrompts[i];
    EXPECT_TRUE(r.reason == "length" || r.reason == "stop") << r.reason;
    if (r.reason == "length") {
      EXPECT_EQ(r.completion_tokens, max_tokens);
    }
  }
  EXPECT_TRUE(sched.wait_idle(std::chrono::seconds(5)));
  EXPECT_EQ(sched.active(), 0);
}

TEST(ServeScheduler, QueueIsBounded) {
  auto m = load_model(kModel);
  const Tokenizer& tok = m->require_tokenizer();
  ThreadPool pool(1);
  SchedulerOptions o;
  o.n_parallel = 1;
  o.max_queue = 1;
  o.n_ctx = 64;
  o.step_delay_ms = 20;
  Scheduler sched(*m, pool, o);
  auto a = sched.submit(greedy_job(tok, "one", 20));
  auto b = sched.submit(greedy_job(tok, "two", 20));
  auto c = sched.submit(greedy_job(tok, "three", 20));
  ASSERT_TRUE(a);
  ASSERT_TRUE(b);
  EXPECT_FALSE(c);  // 1 running + 1 queued: full
  a->cancel();
  b->cancel();
  EXPECT_EQ(collect(a).reason, "cancelled");
  EXPECT_EQ(collect(b).reason, "cancelled");
  EXPECT_TRUE(sched.wait_idle(std::chrono::seconds(5)));
  EXPECT_TRUE(sched.submit(greedy_job(tok, "four", 2)));  // room again
}

TEST(ServeScheduler, CancelledQueuedJobLeavesTheQueueAtOnce) {
  // A queued request whose client went away must free its queue place while every slot is
  // still busy, not when a slot frees up (until then live clients would get 429).
  auto m = load_model(kModel);
  const Tokenizer& tok = m->require_tokenizer();
  ThreadPool pool(1);
  SchedulerOptions o;
  o.n_parallel = 1;
  o.max_queue = 1;
  o.n_ctx = 256;
  o.step_delay_ms = 20;
  Scheduler sched(*m, pool, o);
  Job long_job = greedy_job(tok, "And it came to pass", 200);  // ~4 s at 20 ms a step
  long_job.sampler.temperature = 1.0f;
  long_job.sampler.seed = 1;
  auto a = sched.submit(long_job);
  auto b = sched.submit(greedy_job(tok, "two", 4));
  ASSERT_TRUE(a);
  ASSERT_TRUE(b);
  b->cancel();
  GenerationUpdate u = b->wait(std::chrono::milliseconds(1000), /*until_done=*/true);
  EXPECT_TRUE(u.done);
  EXPECT_EQ(u.finish_reason, "cancelled");
  EXPECT_FALSE(a->finished());  // still running: the slot was never free
  EXPECT_EQ(sched.queue_depth(), 0u);
  EXPECT_TRUE(sched.submit(greedy_job(tok, "three", 2)));  // the queue place is free again
  a->cancel();
}

TEST(ServeScheduler, CancelStopsEarlyAndFreesTheSlot) {
  auto m = load_model(kModel);
  const Tokenizer& tok = m->require_tokenizer();
  ThreadPool pool(1);
  SchedulerOptions o;
  o.n_parallel = 1;
  o.n_ctx = 512;
  o.step_delay_ms = 5;
  Scheduler sched(*m, pool, o);
  Job j = greedy_job(tok, "And it came to pass", 400);
  j.sampler.temperature = 1.0f;  // keeps going (no early EOS in practice at this length)
  j.sampler.seed = 1;
  auto g = sched.submit(j);
  ASSERT_TRUE(g);
  while (g->wait(std::chrono::seconds(1)).text.empty()) {
  }
  g->cancel();
  Result r = collect(g);
  EXPECT_EQ(r.reason, "cancelled");
  EXPECT_LT(r.completion_tokens, 100);
  auto next = sched.submit(greedy_job(tok, "The module", 3));
  EXPECT_EQ(collect(next).completion_tokens, 3);
}

TEST(ServeScheduler, StopStringsEndTheText) {
  auto m = load_model(kModel);
  const Tokenizer& tok = m->require_tokenizer();
  ThreadPool pool(1);
  SchedulerOptions o;
  o.n_ctx = 128;
  Scheduler sched(*m, pool, o);
  std::string full = test::greedy_text(*m, pool, tok.encode(kPrompts[0], true), 40);
  ASSERT_GT(full.size(), 12u);
  std::string stop = full.substr(8, 3);
  Job j = greedy_job(tok, kPrompts[0], 40);
  j.stop = {stop};
  Result r = collect(sched.submit(j));
  EXPECT_EQ(r.reason, "stop");
  EXPECT_EQ(r.text, full.substr(0, full.find(stop)));
}

TEST(ServeScheduler, SeededSamplingRepeats) {
  auto m = load_model(kModel);
  const Tokenizer& tok = m->require_tokenizer();
  ThreadPool pool(1);
  SchedulerOptions o;
  o.n_ctx = 128;
  Scheduler sched(*m, pool, o);
  auto job = [&](uint64_t seed) {
    Job j = greedy_job(tok, "It was", 24);
    j.sampler.temperature = 0.9f;
    j.sampler.top_p = 0.95f;
    j.sampler.top_k = 0;
    j.sampler.seed = seed;
    return j;
  };
  auto a = sched.submit(job(7)), b = sched.submit(job(7)), c = sched.submit(job(8));
  std::string ta = collect(a).text, tb = collect(b).text, tc = collect(c).text;
  EXPECT_EQ(ta, tb);
  EXPECT_NE(ta, tc);
}

TEST(ServeScheduler, TokensOutsideTheTokenizerHaveNoText) {
  // A model whose output vocabulary is larger than its tokenizer's (padded vocabularies): the
  // default model (8192) with stories260K's tokenizer (512 tokens).
  auto m = load_model(kModel);
  auto small = load_model(test::shared_dir() + "/models/stories260K/stories260K.gguf");
  m->tokenizer = std::move(small->tokenizer);
  ThreadPool pool(1);
  SchedulerOptions o;
  o.n_ctx = 64;
  Scheduler sched(*m, pool, o);
  Job j;
  j.prompt = {1, 300, 400};
  j.max_tokens = 20;
  j.sampler.temperature = 0;
  Result r = collect(sched.submit(j));
  EXPECT_TRUE(r.reason == "length" || r.reason == "stop") << r.reason;
  EXPECT_GT(r.completion_tokens, 0);
  EXPECT_TRUE(sched.submit(greedy_job(*m->tokenizer, "x", 2)));  // still serving
}

TEST(ServeScheduler, RefusesJobsThatCannotRun) {
  auto m = load_model(kModel);
  ThreadPool pool(1);
  SchedulerOptions o;
  o.n_ctx = 16;
  Scheduler sched(*m, pool, o);
  Job empty;
  EXPECT_THROW(sched.submit(empty), Error);
  Job longj;
  longj.prompt = std::vector<int32_t>(10, 1);
  longj.max_tokens = 7;  // 10 + 7 > 16
  EXPECT_THROW(sched.submit(longj), Error);
  longj.max_tokens = 6;
  EXPECT_TRUE(sched.submit(longj));
  Job bad;
  bad.prompt = {int32_t(m->hp.n_vocab)};
  EXPECT_THROW(sched.submit(bad), Error);
  // Expert weights that do not fit the model fail the request, not the server.
  std::vector<LayerWeights> wrong(1);
  Job j;
  j.prompt = {1, 2};
  j.max_tokens = 2;
  j.layers = &wrong;
  auto g = sched.submit(j);
  ASSERT_TRUE(g);
  EXPECT_EQ(collect(g).reason, "error");
}

}  // namespace
}  // namespace mf::serve
