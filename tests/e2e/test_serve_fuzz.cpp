// Bounded fuzzing of moeforge serve's request handling, end to end: random and mutated JSON
// bodies, wrong types in every field, oversized and lying bodies, malformed HTTP, and slow or
// stalled clients. The server must answer every request with a non-5xx status (errors as
// OpenAI-shaped JSON), never crash, and keep serving others meanwhile.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "test_serve_util.h"

namespace mf {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

const std::vector<std::string> kSeeds = {
    R"({"model":"default","prompt":"def f(x):","max_tokens":4,"temperature":0})",
    R"({"prompt":["hello"],"max_tokens":3,"stop":["\n"],"seed":5,"temperature":0.7,"top_p":0.9})",
    R"({"prompt":[1,2,3],"max_tokens":2,"stream":true,"stream_options":{"include_usage":true}})",
    R"({"messages":[{"role":"system","content":"s"},{"role":"user","content":"hi"}],"max_tokens":4})",
    R"({"messages":[{"role":"user","content":[{"type":"text","text":"a"}]}],"max_tokens":3,"stream":true})",
    R"({"prompt":"x","max_tokens":2,"moeforge":{"expert":"dense"},"n":1,"user":"u"})",
};

// A random JSON value of any type, sometimes large or nested.
json random_value(std::mt19937& rng, int depth = 0) {
  switch (rng() % 12) {
    case 0: return nullptr;
    case 1: return bool(rng() % 2);
    case 2: return int64_t(rng()) - int64_t(1u << 31);
    case 3: return -1;
    case 4: return 1e300;
    case 5: return std::string(rng() % 3 == 0 ? 3000 : 5, char('a' + rng() % 26));
    case 6: return "\xf0\x9f\x98\x80 \\u0000 </s>";
    case 7: return json::array();
    case 8: return json::object();
    case 9:
      if (depth < 3) return json::array({random_value(rng, depth + 1), random_value(rng, depth + 1)});
      return 0;
    case 10:
      if (depth < 3) return json{{"role", random_value(rng, depth + 1)}, {"content", random_value(rng, depth + 1)}};
      return 0.5;
    default: return 0;
  }
}

std::string mutate(std::string s, std::mt19937& rng) {
  static const char* tokens[] = {"{", "}", "[", "]", "\"", ",", ":", "null", "1e999", "-0", "\\u0000", "\xff", "\\", "9999999999999999999999"};
  const int n = 1 + int(rng() % 4);
  for (int k = 0; k < n && !s.empty(); ++k) {
    const size_t pos = rng() % s.size();
    switch (rng() % 5) {
      case 0: s[pos] = char(rng() % 256); break;
      case 1: s.erase(pos, 1 + rng() % 8); break;
      case 2: s.insert(pos, tokens[rng() % std::size(tokens)]); break;
      case 3: s.insert(pos, s.substr(pos, rng() % 16)); break;
      case 4: s.resize(pos); break;
    }
  }
  return s;
}

// A seed with one field replaced by (or added as) a value of a random type.
std::string retype(const std::string& seed, std::mt19937& rng) {
  json j = json::parse(seed);
  static const char* keys[] = {"model", "prompt", "messages", "max_tokens", "temperature", "top_p", "top_k", "seed",
                               "stop", "n", "stream", "stream_options", "logprobs", "moeforge", "max_completion_tokens"};
  j[keys[rng() % std::size(keys)]] = random_value(rng);
  return j.dump();
}

bool is_error_json(const std::string& body) {
  json j = json::parse(body, nullptr, false);
  return j.is_object() && j.contains("error") && j["error"].is_object() && j["error"]["message"].is_string() &&
         j["error"].contains("type") && j["error"].contains("param") && j["error"].contains("code");
}

TEST(ServeFuzz, RandomAndMutatedBodies) {
  test::ServeProcess s("--ctx 128 --max-body 65536 --parallel 2");
  ASSERT_TRUE(s.ok()) << s.log();
  // MOEFORGE_FUZZ_SEED / MOEFORGE_FUZZ_ITERS explore further than the default bounded run.
  const char* seed_env = std::getenv("MOEFORGE_FUZZ_SEED");
  const char* iters_env = std::getenv("MOEFORGE_FUZZ_ITERS");
  std::mt19937 rng(seed_env ? uint32_t(std::atol(seed_env)) : 20240601u);
  const int iters = iters_env ? std::atoi(iters_env) : 1500;
  auto c = s.client(30);
  const auto deadline = Clock::now() + std::chrono::seconds(iters_env ? 3600 : 25);
  int sent = 0, ok = 0;
  for (int i = 0; i < iters && Clock::now() < deadline; ++i) {
    const std::string& seed = kSeeds[rng() % kSeeds.size()];
    std::string body;
    switch (rng() % 4) {
      case 0: body = mutate(seed, rng); break;
      case 1: body = retype(seed, rng); break;
      case 2: body = retype(retype(seed, rng), rng); break;
      default:
        body.resize(rng() % 200);
        for (char& ch : body) ch = char(rng() % 256);
    }
    const char* path = rng() % 2 ? "/v1/completions" : "/v1/chat/completions";
    auto r = c.Post(path, body, rng() % 4 ? "application/json" : "text/plain");
    ++sent;
    ASSERT_TRUE(r) << "no response (server down?) for " << path << " " << json(body).dump() << "\n" << s.log().substr(0, 2000);
    ASSERT_LT(r->status, 500) << r->body << " for " << json(body).dump();
    if (r->status >= 400) {
      EXPECT_TRUE(is_error_json(r->body)) << r->status << " " << r->body;
    } else {
      ++ok;
      if (r->get_header_value("Content-Type") == "application/json") EXPECT_TRUE(json::accept(r->body)) << r->body;
      else EXPECT_FALSE(test::sse_data(r->body).empty());
    }
  }
  EXPECT_GT(sent, 100);
  EXPECT_GT(ok, 0);  // some mutations stay valid
  auto h = c.Get("/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  EXPECT_TRUE(s.running());
}

TEST(ServeFuzz, OversizedLyingAndMalformedHttp) {
  test::ServeProcess s("--max-body 65536 --timeout 2");
  ASSERT_TRUE(s.ok()) << s.log();
  auto c = s.client(10);
  auto r = c.Post("/v1/completions", json{{"prompt", std::string(200000, 'x')}}.dump(), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);
  EXPECT_TRUE(is_error_json(r->body)) << r->body;
  const std::vector<std::string> raw_requests = {
      "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000000\r\n\r\n{}",  // claims 10 GB
      "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n{}",
      "POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\nabc\r\n0\r\n\r\n",
      "GARBAGE\r\n\r\n",
      "POST /v1/completions HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(20000, 'h') + "\r\n\r\n",
      "GET /" + std::string(20000, 'p') + " HTTP/1.1\r\nHost: x\r\n\r\n",
      std::string("\x00\x01\x02\xff\r\n\r\n", 8),
  };
  for (const std::string& req : raw_requests) {
    test::RawConnection raw(s.port());
    ASSERT_TRUE(raw.connected());
    raw.send(req);
    std::string got = raw.read_until("\r\n\r\n", 5000);
    if (!got.empty()) {
      EXPECT_EQ(got.rfind("HTTP/1.1 4", 0), 0u) << got.substr(0, 200) << " for " << req.substr(0, 60);
    }
  }
  EXPECT_EQ(c.Get("/health")->status, 200);
  EXPECT_TRUE(s.running());
}

TEST(ServeFuzz, SlowAndStalledClientsDoNotBlockOthers) {
  test::ServeProcess s("--timeout 2 --parallel 2");
  ASSERT_TRUE(s.ok()) << s.log();
  const std::string body = json{{"prompt", "It was"}, {"max_tokens", 4}}.dump();
  const std::string request =
      "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
      "\r\nConnection: close\r\n\r\n" + body;
  // Three slow clients trickle a valid request a few bytes at a time; they still get answers.
  std::vector<std::string> replies(3);
  std::vector<std::thread> slow;
  for (int i = 0; i < 3; ++i)
    slow.emplace_back([&, i] {
      test::RawConnection raw(s.port());
      for (size_t p = 0; p < request.size(); p += 7) {
        raw.send(request.substr(p, 7));
        std::this_thread::sleep_for(std::chrono::milliseconds(15));
      }
      replies[i] = raw.read_until("\"usage\"", 10000);
    });
  // Two stalled clients send half a request and stop: the server drops them after --timeout.
  test::RawConnection stalled1(s.port()), stalled2(s.port());
  stalled1.send(request.substr(0, 40));
  stalled2.send(request.substr(0, request.size() - 5));
  // Meanwhile everyone else is served promptly.
  for (int i = 0; i < 5; ++i) {
    const auto t0 = Clock::now();
    auto r = s.client(5).Post("/v1/completions", body, "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_LT(std::chrono::duration<double>(Clock::now() - t0).count(), 2.0);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  for (auto& t : slow) t.join();
  for (const std::string& reply : replies) EXPECT_EQ(reply.rfind("HTTP/1.1 200", 0), 0u) << reply;
  const auto t0 = Clock::now();
  std::string left = stalled2.read_until("never", 8000);  // returns when the server closes
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - t0).count(), 7.0);
  EXPECT_TRUE(left.empty() || left.rfind("HTTP/1.1 4", 0) == 0) << left;
  EXPECT_TRUE(s.running());
  EXPECT_EQ(s.client().Get("/health")->status, 200);
}

}  // namespace
}  // namespace mf
