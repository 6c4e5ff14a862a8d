// Server metrics in Prometheus' text exposition format (version 0.0.4). Thread-safe.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include "ops/moe_routing.h"

namespace mf::serve {

// A cumulative histogram with fixed upper bounds (seconds or counts).
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}
  void observe(double v);
  // Appends "name_bucket{labels,le=..} n", "name_sum", "name_count" lines.
  void render(std::string& out, const std::string& name, const std::string& labels) const;

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // per bucket (not cumulative); last: +Inf
  double sum_ = 0;
  uint64_t count_ = 0;
};

// Live values read when /metrics is rendered.
struct Gauges {
  int64_t queue_depth = 0;
  int64_t active_sequences = 0;
  int64_t slots = 0;
  int64_t draining = 0;
  int64_t http_connections = 0;  // held or queued on the main connection threads
  int64_t http_threads = 0;
};

class Metrics {
 public:
  Metrics();

  void request(const std::string& endpoint, int status, double seconds);
  void tokens(int64_t prompt, int64_t completion);  // counted when a generation ends
  void generated_tokens(int64_t n);                 // counted as they are sampled
  void time_to_first_token(double seconds);
  void queue_wait(double seconds);
  void step(int sequences, int64_t rows, double seconds);
  void finished(const std::string& reason);  // stop, length, cancelled, error
  void rejected_queue_full();
  void routed(const std::string& domain, const std::string& expert, bool forced);
  // A token-routed MoE's routing statistics per layer since the server started (a snapshot).
  void expert_routing(const std::vector<LayerRoutingStats>& layers);

  std::string render(const Gauges& g) const;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;
  std::map<std::string, Histogram> latency_;  // per endpoint
  Histogram ttft_, queue_wait_, step_seconds_, step_sequences_;
  std::map<std::string, uint64_t> finished_;
  std::map<std::tuple<std::string, std::string, std::string>, uint64_t> routed_;
  std::vector<LayerRoutingStats> expert_routing_;
  uint64_t processed_rows_ = 0, prompt_tokens_ = 0, completion_tokens_ = 0, generated_tokens_ = 0, rejected_ = 0, steps_ = 0;
};

// Resident set size of this process in bytes (0 if /proc is unavailable).
int64_t resident_memory_bytes();

}  // namespace mf::serve
