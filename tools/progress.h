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
  // As update(), but the bar and the ETA follow `work`, the share of the job's cost done in
  // [0, 1], for steps of unequal cost (an expert's wide layers take longest).
  void update_work(int64_t done, double work, const std::string& extra = "");
  void finish();

 private:
  std::string label_;
  int64_t total_;
  bool enabled_, tty_, finished_ = false;
  std::chrono::steady_clock::time_point start_, last_;
  // The first update seen: the rate for the ETA is measured from here, so work resumed part
  // way (a training run from its checkpoint) does not count the earlier steps as done now.
  double base_work_ = -1;
  std::chrono::steady_clock::time_point base_time_;
};

}  // namespace mf::cli
