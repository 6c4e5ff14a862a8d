#include "serve/generation.h"

namespace mf::serve {

GenerationUpdate Generation::wait(std::chrono::milliseconds timeout, bool until_done) {
  std::unique_lock<std::mutex> lock(mu_);
  wants_text_ = !until_done;
  cv_.wait_for(lock, timeout, [&] { return done_ || (!until_done && !pending_.empty()); });
  GenerationUpdate u;
  u.text = std::move(pending_);
  pending_.clear();
  u.done = done_;
  u.finish_reason = reason_;
  u.error = error_;
  u.prompt_tokens = prompt_tokens_;
  u.completion_tokens = completion_tokens_;
  return u;
}

void Generation::append(std::string_view text, int completion_tokens) {
  bool wake = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    pending_ += text;
    completion_tokens_ = completion_tokens;
    wake = wants_text_ && !text.empty();
  }
  if (wake) cv_.notify_all();
}

void Generation::finish(const std::string& reason, const std::string& error) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (done_) return;
    done_ = true;
    reason_ = reason;
    error_ = error;
  }
  cv_.notify_all();
}

bool Generation::finished() const {
  std::lock_guard<std::mutex> lock(mu_);
  return done_;
}

}  // namespace mf::serve
