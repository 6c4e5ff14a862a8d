// A one-line progress display on stderr for work that takes more than a few seconds.
// Redraws in place on a terminal; prints occasional plain lines otherwise.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace mf::cli {

class Progress {
 public:
  Progress(std::string label, int64_t total, bool enabled = true);
  ~Progress();
  void update(int64_t done, const std::string& extra = "");
  void finish();

 private:
  std::string label_;
  int64_t total_;
  bool enabled_, tty_, finished_ = false;
  std::chrono::steady_clock::time_point start_, last_;
};

}  // namespace mf::cli
