// One request's generation as seen from both sides: the scheduler thread appends text and
// finishes it; the HTTP handler thread waits for updates and may cancel it.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <string_view>

namespace mf::serve {

using Clock = std::chrono::steady_clock;

// What arrived since the consumer's previous wait().
struct GenerationUpdate {
  std::string text;           // new text (may be empty)
  bool done = false;
  std::string finish_reason;  // when done: "stop", "length", "cancelled" or "error"
  std::string error;          // when finish_reason == "error"
  int prompt_tokens = 0;
  int completion_tokens = 0;  // so far
};

class Generation {
 public:
  explicit Generation(int prompt_tokens) : prompt_tokens_(prompt_tokens), submitted_(Clock::now()) {}

  // Consumer: waits up to `timeout` for new text (or, with until_done, only for the end),
  // then takes what is there. Non-streaming callers wait for the end: no wake-up per token.
  GenerationUpdate wait(std::chrono::milliseconds timeout, bool until_done = false);
  // Consumer: asks the scheduler to stop; the generation then finishes with "cancelled".
  void cancel() { cancel_.store(true); }
  bool cancel_requested() const { return cancel_.load(); }

  // Producer (scheduler thread).
  void append(std::string_view text, int completion_tokens);
  void finish(const std::string& reason, const std::string& error = "");
  bool finished() const;

  Clock::time_point submitted() const { return submitted_; }

 private:
  const int prompt_tokens_;
  const Clock::time_point submitted_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::string pending_;
  bool done_ = false;
  std::string reason_, error_;
  int completion_tokens_ = 0;
  bool wants_text_ = true;  // the waiter wakes for text, not only for the end
  std::atomic<bool> cancel_{false};
};

}  // namespace mf::serve
