#include "serve/scheduler.h"

#include <algorithm>

#include "core/error.h"
#include "serve/text_stream.h"

namespace mf::serve {

struct Scheduler::Sequence {
  Sequence(Job j, std::shared_ptr<Generation> g, int slot)
      : job(std::move(j)), gen(std::move(g)), slot(slot), sampler(job.sampler), text(job.stop) {}
  Job job;
  std::shared_ptr<Generation> gen;
  int slot;
  size_t n_prefilled = 0;   // prompt tokens already in the slot's cache
  bool decoding = false;    // prompt done: each step feeds next_token
  int32_t next_token = -1;  // sampled, not yet in the cache
  int n_generated = 0;
  Sampler sampler;
  TextStream text;
};

namespace {

// Tokens that end an assistant turn in common chat formats, besides the tokenizer's EOS.
const char* const kEndOfTurn[] = {"<|im_end|>", "<|eot_id|>", "<|end|>", "<|endoftext|>", "<|end_of_text|>",
                                  "</s>", "<end_of_turn>"};

}  // namespace

Scheduler::Scheduler(const Model& model, ThreadPool& pool, const SchedulerOptions& opts, Metrics* metrics)
    : model_(model),
      tok_(model.require_tokenizer()),
      opts_(opts),
      metrics_(metrics),
      n_ctx_(opts.n_ctx > 0 ? opts.n_ctx : model.hp.n_ctx_train),
      session_(model, int(n_ctx_), pool, opts.n_parallel) {
  if (opts.n_parallel < 1) fail("--parallel must be at least 1");
  if (opts.max_queue < 0) fail("--queue must not be negative");
  const TokenizerSpec& spec = tok_.spec();
  if (spec.eos_id >= 0) eog_.push_back(spec.eos_id);
  for (int32_t id = 0; id < int32_t(spec.tokens.size()); ++id) {
    const bool special = spec.types.empty() || spec.types[size_t(id)] == TokenType::Control ||
                         spec.types[size_t(id)] == TokenType::UserDefined;
    if (!special) continue;
    for (const char* name : kEndOfTurn)
      if (spec.tokens[size_t(id)] == name && std::find(eog_.begin(), eog_.end(), id) == eog_.end()) eog_.push_back(id);
  }
  slots_.resize(size_t(opts.n_parallel));
  thread_ = std::thread([this] { loop(); });
}

Scheduler::~Scheduler() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
  for (auto& s : slots_)
    if (s) finish(*s, "cancelled");
  for (auto& [job, gen] : queue_) gen->finish("cancelled");
}

std::shared_ptr<Generation> Scheduler::submit(Job job) {
  if (job.prompt.empty()) fail("the prompt has no tokens");
  if (job.max_tokens < 1) fail("max_tokens must be at least 1");
  if (int64_t(job.prompt.size()) + job.max_tokens > n_ctx_)
    fail("prompt (", job.prompt.size(), " tokens) + max_tokens (", job.max_tokens, ") exceed the context of ", n_ctx_);
  for (int32_t t : job.prompt)
    if (t < 0 || t >= model_.hp.n_vocab) fail("token id ", t, " is outside the vocabulary of ", model_.hp.n_vocab);
  auto gen = std::make_shared<Generation>(int(job.prompt.size()));
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_) fail("the scheduler is stopped");
    if (int64_t(queue_.size()) + active_ >= int64_t(opts_.n_parallel) + opts_.max_queue) return nullptr;
    queue_.emplace_back(std::move(job), gen);
  }
  cv_.notify_all();
  return gen;
}

size_t Scheduler::queue_depth() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.size();
}

int Scheduler::active() const {
  std::lock_guard<std::mutex> lock(mu_);
  return active_;
}

bool Scheduler::wait_idle(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return idle_cv_.wait_for(lock, timeout, [&] { return queue_.empty() && active_ == 0; });
}

void Scheduler::cancel_all() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [job, gen] : queue_) gen->cancel();
  cancel_all_ = true;
  cv_.notify_all();
}

bool Scheduler::is_end_of_generation(int32_t token) const {
  return std::find(eog_.begin(), eog_.end(), token) != eog_.end();
}

void Scheduler::loop() {
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !queue_.empty() || active_ > 0; });
      if (stop_) return;
    }
    try {
      admit();
      if (!drop_cancelled()) continue;
      run_step();
    } catch (const std::exception& e) {  // never let the server die with the thread: fail what runs
      for (auto& seq : slots_)
        if (seq) finish(*seq, "error", e.what());
    }
    if (opts_.step_delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(opts_.step_delay_ms));
  }
}

void Scheduler::admit() {
  std::unique_lock<std::mutex> lock(mu_);
  if (cancel_all_) {
    for (auto& s : slots_)
      if (s) s->gen->cancel();
    cancel_all_ = false;
  }
  // Queued jobs whose client went away leave the queue now, not when a slot frees up: they
  // must not hold queue places (429 for live clients) while every slot is busy.
  for (auto it = queue_.begin(); it != queue_.end();) {
    if (!it->second->cancel_requested()) {
      ++it;
      continue;
    }
    it->second->finish("cancelled");
    if (metrics_) metrics_->finished("cancelled");
    it = queue_.erase(it);
  }
  for (size_t slot = 0; slot < slots_.size() && !queue_.empty(); ++slot) {
    if (slots_[slot]) continue;
    auto [job, gen] = std::move(queue_.front());
    queue_.pop_front();
    if (gen->cancel_requested()) {
      gen->finish("cancelled");
      if (metrics_) metrics_->finished("cancelled");
      --slot;  // the slot is still free
      continue;
    }
    // Everything that can throw (a bad expert, memory) happens while `gen` is still ours to
    // finish: a job popped from the queue must never be left without an answer.
    try {
      session_.set_layers(int(slot), job.layers);
      if (model_.hp.n_expert > 0) session_.set_routing(int(slot), job.routing.value_or(model_.routing));
      session_.set_adapter(int(slot), job.adapter.get());
      if (model_.mode.enabled()) session_.set_mode_expert(int(slot), job.mode_expert.value_or(model_.mode_expert));
      session_.reset(int(slot));
      slots_[slot] = std::make_unique<Sequence>(std::move(job), gen, int(slot));
    } catch (const std::exception& e) {
      gen->finish("error", e.what());
      if (metrics_) metrics_->finished("error");
      --slot;
      continue;
    }
    if (metrics_) metrics_->queue_wait(std::chrono::duration<double>(Clock::now() - gen->submitted()).count());
    ++active_;
  }
  if (queue_.empty() && active_ == 0) idle_cv_.notify_all();
}

bool Scheduler::drop_cancelled() {
  bool any = false;
  for (auto& s : slots_) {
    if (s && s->gen->cancel_requested()) finish(*s, "cancelled");
    any = any || s;
  }
  return any;
}

void Scheduler::run_step() {
  std::vector<SeqInput> inputs;
  std::vector<Sequence*> owners;
  int64_t budget = Session::kMaxBatch;
  for (auto& s : slots_) {
    if (!s || !s->decoding) continue;
    inputs.push_back(SeqInput{s->slot, {&s->next_token, 1}, LogitRows::Last});
    owners.push_back(s.get());
    --budget;
  }
  // Prompts go in chunks that fill the rest of the step, so decoding never waits long.
  for (auto& s : slots_) {
    if (!s || s->decoding || budget == 0) continue;
    const int64_t left = int64_t(s->job.prompt.size() - s->n_prefilled);
    const int64_t n = std::min(left, budget);
    const bool last = n == left;
    inputs.push_back(SeqInput{s->slot, {s->job.prompt.data() + s->n_prefilled, size_t(n)}, last ? LogitRows::Last : LogitRows::None});
    owners.push_back(s.get());
    budget -= n;
  }
  if (inputs.empty()) return;

  const auto t0 = Clock::now();
  const float* logits = nullptr;
  try {
    logits = session_.step(inputs);  // [n_outputs, n_vocab]
  } catch (const std::exception& e) {  // validated inputs make this a bug; fail the requests, not the server
    for (Sequence* s : owners) finish(*s, "error", e.what());
    return;
  }
  if (metrics_) {
    metrics_->step(int(inputs.size()), Session::kMaxBatch - budget, std::chrono::duration<double>(Clock::now() - t0).count());
    if (model_.hp.n_expert > 0) metrics_->expert_routing(session_.routing_stats());
  }

  const int64_t V = model_.hp.n_vocab;
  int64_t row = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    Sequence& s = *owners[i];
    if (!s.decoding) {
      s.n_prefilled += inputs[i].tokens.size();
      if (inputs[i].logits == LogitRows::None) continue;
      s.decoding = true;
    }
    // advance() may finish (and free) s before it throws: remember where it lived.
    const Sequence* const owner = &s;
    const size_t slot = size_t(s.slot);
    try {
      advance(s, logits + row * V);
    } catch (const std::exception& e) {
      if (slots_[slot].get() == owner) finish(s, "error", e.what());
    }
    ++row;
  }
}

bool Scheduler::advance(Sequence& s, const float* logits) {
  const int32_t token = s.sampler.sample(logits, int32_t(model_.hp.n_vocab));
  if (metrics_) {
    metrics_->generated_tokens(1);
    if (s.n_generated == 0)
      metrics_->time_to_first_token(std::chrono::duration<double>(Clock::now() - s.gen->submitted()).count());
  }
  if (is_end_of_generation(token)) {
    s.gen->append(s.text.flush(), s.n_generated);
    finish(s, "stop");
    return false;
  }
  ++s.n_generated;
  // Models often pad their output vocabulary beyond the tokenizer's: such ids have no text.
  std::string delta = s.text.push(token < tok_.n_vocab() ? tok_.token_to_piece(token) : std::string());
  if (s.text.stopped()) {
    s.gen->append(delta, s.n_generated);
    finish(s, "stop");
    return false;
  }
  if (s.n_generated >= s.job.max_tokens || session_.n_past(s.slot) >= n_ctx_) {
    s.gen->append(delta + s.text.flush(), s.n_generated);
    finish(s, "length");
    return false;
  }
  s.gen->append(delta, s.n_generated);
  s.next_token = token;
  return true;
}

void Scheduler::finish(Sequence& s, const std::string& reason, const std::string& error) {
  // Metrics and the slot first: a client that has its answer sees them updated.
  if (metrics_) {
    metrics_->finished(reason);
    metrics_->tokens(int64_t(s.job.prompt.size()), s.n_generated);
  }
  std::shared_ptr<Generation> gen = s.gen;
  if (s.job.mode_gates) *s.job.mode_gates = session_.mode_gates(s.slot);  // read by the response after gen->finish
  slots_[size_t(s.slot)].reset();  // s is gone from here on
  {
    std::lock_guard<std::mutex> lock(mu_);
    --active_;
    if (queue_.empty() && active_ == 0) idle_cv_.notify_all();
  }
  gen->finish(reason, error);
}

}  // namespace mf::serve
