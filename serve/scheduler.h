// Continuous batching: a thread that owns the Session (one slot per running sequence) and
// runs batched forward steps. Each step carries one new token for every decoding sequence and
// prompt chunks for sequences still prefilling; finished or cancelled sequences free their slot
// and queued requests take it at the next step.
#pragma once
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "model/sampler.h"
#include "model/session.h"
#include "serve/generation.h"
#include "serve/metrics.h"

namespace mf::serve {

struct Job {
  std::vector<int32_t> prompt;  // >= 1 token; prompt + max_tokens <= n_ctx (checked by the caller)
  int max_tokens = 16;
  SamplerParams sampler;
  std::vector<std::string> stop;
  const std::vector<LayerWeights>* layers = nullptr;  // expert weights, nullptr: dense
  std::optional<RouteParams> routing;  // token-routed MoE: this request's expert routing (else the model's)
  std::shared_ptr<LinearAdapter> adapter;  // LoRA update of this request (kept alive by the job), or none
  std::optional<int> mode_expert;          // MoDE: what this request runs (else the model's mode_expert)
  std::shared_ptr<ModeGateTally> mode_gates;  // MoDE: filled with the sequence's gate weights when it ends, or none
};

struct SchedulerOptions {
  int n_parallel = 4;     // slots: sequences decoded together
  int n_ctx = 0;          // per slot; <= 0: the model's training context
  int max_queue = 64;     // jobs waiting for a slot; submit() refuses more
  int step_delay_ms = 0;  // sleep after each step (tests use it to hold requests in flight)
};

class Scheduler {
 public:
  Scheduler(const Model& model, ThreadPool& pool, const SchedulerOptions& opts, Metrics* metrics = nullptr);
  ~Scheduler();  // cancels what is left and joins the thread
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues a job; returns nullptr when the queue is full. Throws mf::Error for a job that
  // can never run (empty prompt, prompt + max_tokens over the context, bad expert weights).
  std::shared_ptr<Generation> submit(Job job);

  int64_t n_ctx() const { return n_ctx_; }
  int n_parallel() const { return opts_.n_parallel; }
  size_t queue_depth() const;
  int active() const;
  // Blocks until nothing is queued or running, or until the timeout; true when idle.
  bool wait_idle(std::chrono::milliseconds timeout);
  // Cancels every queued and running generation (they finish with "cancelled").
  void cancel_all();

 private:
  struct Sequence;
  void loop();
  void admit();
  bool drop_cancelled();
  void run_step();
  // Samples the sequence's next token from its logits row; returns false when it finished.
  bool advance(Sequence& s, const float* logits);
  void finish(Sequence& s, const std::string& reason, const std::string& error = "");
  bool is_end_of_generation(int32_t token) const;

  const Model& model_;
  const Tokenizer& tok_;
  SchedulerOptions opts_;
  Metrics* metrics_;
  int64_t n_ctx_;
  Session session_;
  std::vector<int32_t> eog_;  // end-of-generation token ids (EOS, <|im_end|>, <|eot_id|>, ...)

  mutable std::mutex mu_;
  std::condition_variable cv_;       // work arrived / stop
  std::condition_variable idle_cv_;  // became idle
  std::deque<std::pair<Job, std::shared_ptr<Generation>>> queue_;
  std::vector<std::unique_ptr<Sequence>> slots_;  // [n_parallel], null when free; scheduler thread only
  int active_ = 0;                                // guarded by mu_
  bool stop_ = false;
  bool cancel_all_ = false;  // running sequences are cancelled at the next admit()
  std::thread thread_;
};

}  // namespace mf::serve
