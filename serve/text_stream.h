// Turns generated token pieces into text that is safe to send: stop strings end the text
// (they and what follows are dropped), and bytes that could still become a stop string or
// complete a UTF-8 character are held back until the next piece decides.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace mf::serve {

class TextStream {
 public:
  explicit TextStream(std::vector<std::string> stop = {}) : stop_(std::move(stop)) {}

  // Appends a token's bytes; returns the text that can be emitted now ("" when all is held
  // back). After a stop string completes, stopped() is true and later pushes return "".
  std::string push(std::string_view piece);
  // The held-back rest at the end of generation (an unfinished UTF-8 sequence included).
  std::string flush();
  bool stopped() const { return stopped_; }
  // All text emitted so far (push and flush results concatenated).
  const std::string& text() const { return emitted_; }

 private:
  std::string take(size_t n);

  std::vector<std::string> stop_;
  std::string held_;
  std::string emitted_;
  bool stopped_ = false;
};

// Length of the longest prefix of s that does not end inside a UTF-8 sequence whose
// remaining bytes may still arrive (a truncated lead byte at the end is held back).
size_t utf8_complete_prefix(std::string_view s);

}  // namespace mf::serve
