#include "serve/text_stream.h"

#include <algorithm>

namespace mf::serve {

size_t utf8_complete_prefix(std::string_view s) {
  // Look at most 3 bytes back for the lead byte of the last sequence.
  const size_t n = s.size();
  for (size_t back = 1; back <= std::min<size_t>(3, n); ++back) {
    const unsigned char c = static_cast<unsigned char>(s[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: keep looking for the lead
    size_t need = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
    return need > back ? n - back : n;  // the sequence is incomplete: hold it back
  }
  return n;  // only continuation bytes (invalid anyway) or empty: nothing to wait for
}

std::string TextStream::take(size_t n) {
  std::string out = held_.substr(0, n);
  held_.erase(0, n);
  emitted_ += out;
  return out;
}

std::string TextStream::push(std::string_view piece) {
  if (stopped_) return "";
  held_ += piece;
  // A stop string can only start in held_ (see the hold-back rule below).
  size_t first = std::string::npos;
  for (const std::string& s : stop_) first = std::min(first, held_.find(s));
  if (first != std::string::npos) {
    std::string out = take(first);
    held_.clear();
    stopped_ = true;
    return out;
  }
  // Hold back the longest suffix that is a proper prefix of some stop string.
  size_t keep = 0;
  for (const std::string& s : stop_)
    for (size_t len = std::min(s.size() - 1, held_.size()); len > keep; --len)
      if (held_.compare(held_.size() - len, len, s, 0, len) == 0) {
        keep = len;
        break;
      }
  const size_t n = held_.size() - keep;
  return take(utf8_complete_prefix(std::string_view(held_).substr(0, n)));
}

std::string TextStream::flush() {
  if (stopped_) return "";
  return take(held_.size());
}

}  // namespace mf::serve
