#include "tools/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace mf::cli {

Progress::Progress(std::string label, int64_t total, bool enabled)
    : label_(std::move(label)), total_(total), enabled_(enabled), tty_(isatty(STDERR_FILENO)) {
  start_ = last_ = std::chrono::steady_clock::now();
}

Progress::~Progress() { finish(); }

void Progress::update(int64_t done, const std::string& extra) {
  update_work(done, total_ > 0 ? double(done) / double(total_) : 1.0, extra);
}

void Progress::update_work(int64_t done, double work, const std::string& extra) {
  if (!enabled_) return;
  auto now = std::chrono::steady_clock::now();
  if (base_work_ < 0) base_work_ = work, base_time_ = now;
  double since_last = std::chrono::duration<double>(now - last_).count();
  // Terminal: redraw up to 10x/s. Logs: one line every 5 s, so CI output stays short.
  if (done < total_ && since_last < (tty_ ? 0.1 : 5.0)) return;
  last_ = now;
  double elapsed = std::chrono::duration<double>(now - start_).count();
  double since_base = std::chrono::duration<double>(now - base_time_).count();
  char eta[32] = "?";
  if (done >= total_) std::snprintf(eta, sizeof eta, "0s");
  else if (work > base_work_ && since_base > 0)
    std::snprintf(eta, sizeof eta, "%.0fs", since_base * (1.0 - work) / (work - base_work_));
  int width = 30, filled = int(std::clamp(work, 0.0, 1.0) * width);
  std::string bar(filled, '#');
  bar.resize(width, '.');
  std::fprintf(stderr, "%s%s [%s] %lld/%lld %.0fs eta %s %s%s", tty_ ? "\r" : "", label_.c_str(), bar.c_str(),
               (long long)done, (long long)total_, elapsed, eta, extra.c_str(), tty_ ? "\033[K" : "\n");
  std::fflush(stderr);
}

void Progress::finish() {
  if (!enabled_ || finished_) return;
  finished_ = true;
  if (tty_) std::fprintf(stderr, "\n");
}

}  // namespace mf::cli
