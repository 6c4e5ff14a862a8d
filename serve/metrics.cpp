#include "serve/metrics.h"

#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <fstream>

namespace mf::serve {

namespace {

const std::vector<double> kLatencyBounds = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};
const std::vector<double> kStepBounds = {0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1};
const std::vector<double> kSequenceBounds = {1, 2, 4, 8, 16, 32, 64, 128};

// Shortest text that reads back as the same double.
std::string num(double v) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

// Prometheus label values escape backslash, double quote and newline.
std::string label_value(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

void header(std::string& out, const char* name, const char* type, const char* help) {
  out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

}  // namespace

void Histogram::observe(double v) {
  size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;
  counts_[i]++;
  sum_ += v;
  count_++;
}

void Histogram::render(std::string& out, const std::string& name, const std::string& labels) const {
  const std::string sep = labels.empty() ? "" : ",";
  uint64_t cum = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    cum += counts_[i];
    std::string le = i < bounds_.size() ? num(bounds_[i]) : "+Inf";
    out += name + "_bucket{" + labels + sep + "le=\"" + le + "\"} " + std::to_string(cum) + "\n";
  }
  const std::string braces = labels.empty() ? "" : "{" + labels + "}";
  out += name + "_sum" + braces + " " + num(sum_) + "\n";
  out += name + "_count" + braces + " " + std::to_string(count_) + "\n";
}

Metrics::Metrics()
    : ttft_(kLatencyBounds), queue_wait_(kLatencyBounds), step_seconds_(kStepBounds), step_sequences_(kSequenceBounds) {}

void Metrics::request(const std::string& endpoint, int status, double seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  requests_[{endpoint, status}]++;
  latency_.try_emplace(endpoint, kLatencyBounds).first->second.observe(seconds);
}

void Metrics::tokens(int64_t prompt, int64_t completion) {
  std::lock_guard<std::mutex> lock(mu_);
  prompt_tokens_ += uint64_t(prompt);
  completion_tokens_ += uint64_t(completion);
}

void Metrics::generated_tokens(int64_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  generated_tokens_ += uint64_t(n);
}

void Metrics::time_to_first_token(double seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  ttft_.observe(seconds);
}

void Metrics::queue_wait(double seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  queue_wait_.observe(seconds);
}

void Metrics::step(int sequences, int64_t rows, double seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  steps_++;
  step_seconds_.observe(seconds);
  step_sequences_.observe(sequences);
  processed_rows_ += uint64_t(rows);
}

void Metrics::finished(const std::string& reason) {
  std::lock_guard<std::mutex> lock(mu_);
  finished_[reason]++;
}

void Metrics::rejected_queue_full() {
  std::lock_guard<std::mutex> lock(mu_);
  rejected_++;
}

void Metrics::routed(const std::string& domain, const std::string& expert, bool forced) {
  std::lock_guard<std::mutex> lock(mu_);
  routed_[{domain, expert, forced ? "true" : "false"}]++;
}

void Metrics::expert_routing(const std::vector<LayerRoutingStats>& layers) {
  std::lock_guard<std::mutex> lock(mu_);
  expert_routing_ = layers;
}

std::string Metrics::render(const Gauges& g) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  header(out, "moeforge_requests_total", "counter", "HTTP requests by endpoint and status code.");
  for (const auto& [key, n] : requests_)
    out += "moeforge_requests_total{endpoint=\"" + label_value(key.first) + "\",status=\"" + std::to_string(key.second) +
           "\"} " + std::to_string(n) + "\n";
  header(out, "moeforge_request_duration_seconds", "histogram", "Request latency from arrival to the last byte, by endpoint.");
  for (const auto& [endpoint, h] : latency_)
    h.render(out, "moeforge_request_duration_seconds", "endpoint=\"" + label_value(endpoint) + "\"");
  header(out, "moeforge_time_to_first_token_seconds", "histogram", "From submission to the first generated token.");
  ttft_.render(out, "moeforge_time_to_first_token_seconds", "");
  header(out, "moeforge_queue_wait_seconds", "histogram", "From submission to getting a decoding slot.");
  queue_wait_.render(out, "moeforge_queue_wait_seconds", "");
  header(out, "moeforge_prompt_tokens_total", "counter", "Prompt tokens of finished generations.");
  out += "moeforge_prompt_tokens_total " + std::to_string(prompt_tokens_) + "\n";
  header(out, "moeforge_completion_tokens_total", "counter", "Completion tokens of finished generations.");
  out += "moeforge_completion_tokens_total " + std::to_string(completion_tokens_) + "\n";
  header(out, "moeforge_generated_tokens_total", "counter", "Tokens sampled so far (live, includes running generations).");
  out += "moeforge_generated_tokens_total " + std::to_string(generated_tokens_) + "\n";
  header(out, "moeforge_generations_finished_total", "counter", "Finished generations by reason (stop, length, cancelled, error).");
  for (const char* r : {"stop", "length", "cancelled", "error"}) {
    auto it = finished_.find(r);
    out += std::string("moeforge_generations_finished_total{reason=\"") + r + "\"} " +
           std::to_string(it == finished_.end() ? 0 : it->second) + "\n";
  }
  header(out, "moeforge_queue_rejected_total", "counter", "Requests answered 429 because the queue was full.");
  out += "moeforge_queue_rejected_total " + std::to_string(rejected_) + "\n";
  header(out, "moeforge_routed_prompts_total", "counter", "Prompts by routing decision (domain, expert, forced by the request).");
  for (const auto& [key, n] : routed_)
    out += "moeforge_routed_prompts_total{domain=\"" + label_value(std::get<0>(key)) + "\",expert=\"" +
           label_value(std::get<1>(key)) + "\",forced=\"" + std::get<2>(key) + "\"} " + std::to_string(n) + "\n";
  if (!expert_routing_.empty()) {  // a token-routed MoE
    header(out, "moeforge_expert_tokens_total", "counter", "Tokens routed to each expert, by MoE layer.");
    for (size_t il = 0; il < expert_routing_.size(); ++il)
      for (size_t e = 0; e < expert_routing_[il].tokens_per_expert.size(); ++e)
        out += "moeforge_expert_tokens_total{layer=\"" + std::to_string(il) + "\",expert=\"" + std::to_string(e) + "\"} " +
               std::to_string(expert_routing_[il].tokens_per_expert[e]) + "\n";
    auto per_layer = [&](const char* name, const char* help, auto value) {
      header(out, name, "gauge", help);
      for (size_t il = 0; il < expert_routing_.size(); ++il)
        if (expert_routing_[il].n_tokens > 0)
          out += std::string(name) + "{layer=\"" + std::to_string(il) + "\"} " + std::to_string(value(expert_routing_[il])) + "\n";
    };
    per_layer("moeforge_expert_load_imbalance", "Most-loaded expert's tokens over the mean, by MoE layer (1 = balanced).",
              [](const LayerRoutingStats& s) { return s.load_imbalance(); });
    per_layer("moeforge_router_entropy_nats", "Mean entropy of the router's distribution per token, by MoE layer.",
              [](const LayerRoutingStats& s) { return s.mean_entropy(); });
    per_layer("moeforge_experts_per_token", "Mean experts run per token (top-k, or dynamic under top-p), by MoE layer.",
              [](const LayerRoutingStats& s) { return s.mean_experts_used(); });
  }
  header(out, "moeforge_decode_steps_total", "counter", "Batched forward steps run by the scheduler.");
  out += "moeforge_decode_steps_total " + std::to_string(steps_) + "\n";
  header(out, "moeforge_processed_tokens_total", "counter", "Tokens run through the model (prompt chunks and decode).");
  out += "moeforge_processed_tokens_total " + std::to_string(processed_rows_) + "\n";
  header(out, "moeforge_step_seconds", "histogram", "Duration of one batched forward step (all sequences).");
  step_seconds_.render(out, "moeforge_step_seconds", "");
  header(out, "moeforge_step_sequences", "histogram", "Sequences per batched step (continuous batching occupancy).");
  step_sequences_.render(out, "moeforge_step_sequences", "");
  header(out, "moeforge_queue_depth", "gauge", "Requests waiting for a decoding slot.");
  out += "moeforge_queue_depth " + std::to_string(g.queue_depth) + "\n";
  header(out, "moeforge_active_sequences", "gauge", "Sequences holding a decoding slot.");
  out += "moeforge_active_sequences " + std::to_string(g.active_sequences) + "\n";
  header(out, "moeforge_slots", "gauge", "Decoding slots (--parallel).");
  out += "moeforge_slots " + std::to_string(g.slots) + "\n";
  header(out, "moeforge_draining", "gauge", "1 while the server drains after SIGTERM.");
  out += "moeforge_draining " + std::to_string(g.draining) + "\n";
  header(out, "moeforge_http_connections", "gauge", "Connections held by the main connection threads (this scrape included).");
  out += "moeforge_http_connections " + std::to_string(g.http_connections) + "\n";
  header(out, "moeforge_http_threads", "gauge", "Main connection threads (--http-threads); connections past them get 429.");
  out += "moeforge_http_threads " + std::to_string(g.http_threads) + "\n";
  header(out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
  out += "process_resident_memory_bytes " + std::to_string(resident_memory_bytes()) + "\n";
  return out;
}

int64_t resident_memory_bytes() {
  std::ifstream f("/proc/self/statm");
  int64_t size = 0, resident = 0;
  if (!(f >> size >> resident)) return 0;
  return resident * int64_t(sysconf(_SC_PAGESIZE));
}

}  // namespace mf::serve
