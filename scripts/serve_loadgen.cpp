// serve_loadgen: a closed-loop load generator for `moeforge serve` (docs/benchmarks.md).
// C clients each send requests back to back for a duration (or a request count) over
// keep-alive connections, then it reports requests/s, completion tokens/s, latency
// percentiles, status classes and, with --rss-every, the server's RSS from /metrics.
//
//   serve_loadgen --port 8080 -c 4 --duration 30 --max-tokens 64 [--chat] [--json]
#include <httplib.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  std::string host = "127.0.0.1";
  int port = 8080;
  int concurrency = 1;
  double duration_s = 10;
  int requests = 0;  // > 0: stop after this many in total instead of the duration
  int max_tokens = 64;
  bool chat = false;
  bool stream = false;  // stream: true (SSE) with usage in the last chunk
  bool mix = false;     // rotate completions, chat, streamed completions, streamed chat
  std::string api_key;
  double rss_every_s = 0;
  bool json_out = false;
};

// Prompts from the default model's four domains (code, math, prose, reference).
const char* const kPrompts[] = {
    "def read_config(path):",
    "Question: A shop sells 4 pens for 2 dollars each. How much do the pens cost?\nAnswer:",
    "And it came to pass, when the",
    "The module provides",
    "import os\nimport sys\n\ndef main():",
    "Question: Tom has 12 apples and gives away 5. How many are left?\nAnswer:",
    "It was a dark and stormy night; the",
    "This function returns",
};

struct Sample {
  double latency_s;
  int status;
  int completion_tokens;
  int prompt_tokens;
};

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = size_t(std::min<double>(v.size() - 1, std::max(0.0, p * double(v.size()) - 1e-9)));
  return v[i];
}

int64_t server_rss(const Options& o) {
  httplib::Client c(o.host, o.port);
  httplib::Headers h;
  if (!o.api_key.empty()) h.emplace("Authorization", "Bearer " + o.api_key);
  auto r = c.Get("/metrics", h);
  if (!r || r->status != 200) return -1;
  auto pos = r->body.find("\nprocess_resident_memory_bytes ");
  if (pos == std::string::npos) return -1;
  return std::atoll(r->body.c_str() + pos + 31);
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"Closed-loop load generator for moeforge serve"};
  app.add_option("--host", o.host);
  app.add_option("--port", o.port)->required();
  app.add_option("-c,--concurrency", o.concurrency, "Concurrent clients")->check(CLI::Range(1, 1024));
  app.add_option("--duration", o.duration_s, "Seconds to run");
  app.add_option("-n,--requests", o.requests, "Total requests (overrides --duration)");
  app.add_option("--max-tokens", o.max_tokens);
  app.add_flag("--chat", o.chat, "Use /v1/chat/completions instead of /v1/completions");
  app.add_flag("--stream", o.stream, "Request Server-Sent Events (stream: true)");
  app.add_flag("--mix", o.mix, "Rotate completions, chat, streamed completions and streamed chat");
  app.add_option("--api-key", o.api_key);
  app.add_option("--rss-every", o.rss_every_s, "Print the server's RSS (from /metrics) every S seconds");
  app.add_flag("--json", o.json_out, "Print the summary as JSON");
  CLI11_PARSE(app, argc, argv);

  std::mutex mu;
  std::vector<Sample> samples;
  std::atomic<int> issued{0};
  std::atomic<bool> stop{false};
  const auto t0 = Clock::now();
  const auto deadline = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.duration_s));

  std::vector<std::thread> clients;
  for (int c = 0; c < o.concurrency; ++c) {
    clients.emplace_back([&, c] {
      httplib::Client cli(o.host, o.port);
      cli.set_keep_alive(true);
      cli.set_tcp_nodelay(true);  // headers and body are separate writes (Nagle + delayed ACK: +40 ms)
      cli.set_read_timeout(600, 0);
      httplib::Headers h;
      if (!o.api_key.empty()) h.emplace("Authorization", "Bearer " + o.api_key);
      for (int i = 0;; ++i) {
        if (stop) break;
        if (o.requests > 0 ? issued.fetch_add(1) >= o.requests : Clock::now() >= deadline) break;
        const char* prompt = kPrompts[size_t(c + i * o.concurrency) % std::size(kPrompts)];
        const int kind = o.mix ? (c + i) % 4 : (o.chat ? 1 : 0) + (o.stream ? 2 : 0);
        const bool chat = kind % 2 == 1, stream = kind >= 2;
        json body = {{"max_tokens", o.max_tokens}, {"temperature", 0}};
        if (chat) body["messages"] = json::array({{{"role", "user"}, {"content", prompt}}});
        else body["prompt"] = prompt;
        if (stream) {
          body["stream"] = true;
          body["stream_options"] = {{"include_usage", true}};
        }
        const auto start = Clock::now();
        auto r = cli.Post(chat ? "/v1/chat/completions" : "/v1/completions", h, body.dump(), "application/json");
        Sample s{std::chrono::duration<double>(Clock::now() - start).count(), r ? r->status : 0, 0, 0};
        if (r && r->status == 200) {
          // The usage object: the whole body, or the last "data: {...}" chunk that has one.
          std::string text = r->body;
          if (stream) {
            const size_t pos = text.rfind("\"usage\"");
            const size_t begin = pos == std::string::npos ? std::string::npos : text.rfind("data: ", pos);
            text = begin == std::string::npos ? "" : text.substr(begin + 6, text.find("\n\n", begin) - begin - 6);
          }
          json j = json::parse(text, nullptr, false);
          if (j.is_object() && j.contains("usage") && j["usage"].is_object()) {
            s.completion_tokens = j["usage"].value("completion_tokens", 0);
            s.prompt_tokens = j["usage"].value("prompt_tokens", 0);
          } else {
            s.status = -1;  // a 200 without usage: count it as a failure
          }
        }
        std::lock_guard<std::mutex> lock(mu);
        samples.push_back(s);
      }
    });
  }
  std::thread rss_thread;
  std::vector<std::pair<double, int64_t>> rss;
  if (o.rss_every_s > 0) {
    rss_thread = std::thread([&] {
      while (!stop) {
        const double t = std::chrono::duration<double>(Clock::now() - t0).count();
        const int64_t bytes = server_rss(o);
        rss.emplace_back(t, bytes);
        if (!o.json_out) std::fprintf(stderr, "t=%6.0fs rss=%.1f MiB\n", t, double(bytes) / (1 << 20));
        for (double w = 0; w < o.rss_every_s && !stop; w += 0.1) std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    });
  }
  for (auto& t : clients) t.join();
  const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
  stop = true;
  if (rss_thread.joinable()) rss_thread.join();

  std::map<std::string, int> classes;
  std::vector<double> lat;
  int64_t out_tokens = 0, in_tokens = 0;
  for (const Sample& s : samples) {
    classes[s.status <= 0 ? "failed" : std::to_string(s.status / 100) + "xx"]++;
    if (s.status == 200) lat.push_back(s.latency_s);
    out_tokens += s.completion_tokens;
    in_tokens += s.prompt_tokens;
  }
  json j = {{"concurrency", o.concurrency},
            {"requests", samples.size()},
            {"wall_s", wall},
            {"requests_per_s", double(lat.size()) / wall},
            {"completion_tokens", out_tokens},
            {"completion_tokens_per_s", double(out_tokens) / wall},
            {"prompt_tokens_per_s", double(in_tokens) / wall},
            {"latency_p50_s", percentile(lat, 0.50)},
            {"latency_p90_s", percentile(lat, 0.90)},
            {"latency_p99_s", percentile(lat, 0.99)},
            {"status", classes}};
  if (!rss.empty()) {
    json r = json::array();
    for (auto& [t, b] : rss) r.push_back({t, b});
    j["rss"] = r;
  }
  if (o.json_out) {
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("clients %d: %zu requests in %.1fs, %.2f req/s, %.1f completion tok/s, p50 %.3fs p90 %.3fs p99 %.3fs, status %s\n",
                o.concurrency, samples.size(), wall, j["requests_per_s"].get<double>(), j["completion_tokens_per_s"].get<double>(),
                j["latency_p50_s"].get<double>(), j["latency_p90_s"].get<double>(), j["latency_p99_s"].get<double>(),
                json(classes).dump().c_str());
  }
  return classes.count("5xx") || classes.count("failed") ? 1 : 0;
}
