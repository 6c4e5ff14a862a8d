// moeforge serve end to end over HTTP: the real binary on a free loopback port. Completions,
// chat, streaming, the error contract (OpenAI-shaped JSON, 4xx) and API-key authentication.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "test_serve_util.h"
#include "test_util.h"

namespace mf {
namespace {

using json = nlohmann::json;
using test::ServeProcess;

const char* kPrompt = "def read_config(path):";

json post_json(ServeProcess& s, const std::string& path, const json& body, int expect_status) {
  auto c = s.client();
  auto r = c.Post(path.c_str(), body.dump(), "application/json");
  EXPECT_TRUE(r) << path;
  if (!r) return {};
  EXPECT_EQ(r->status, expect_status) << r->body;
  EXPECT_EQ(r->get_header_value("Content-Type"), "application/json");
  return json::parse(r->body, nullptr, false);
}

// {"error": {"message": non-empty, "type", "param", "code"}}
void expect_error_shape(const json& j, const std::string& param = "", const std::string& code = "") {
  ASSERT_TRUE(j.is_object() && j.contains("error")) << j.dump();
  const json& e = j["error"];
  EXPECT_TRUE(e["message"].is_string() && !e["message"].get<std::string>().empty());
  EXPECT_TRUE(e["type"].is_string());
  EXPECT_TRUE(e.contains("param") && e.contains("code"));
  if (!param.empty()) {
    EXPECT_EQ(e["param"], param) << j.dump();
  }
  if (!code.empty()) {
    EXPECT_EQ(e["code"], code) << j.dump();
  }
}

TEST(Serve, CompletionMatchesGenerate) {
  ServeProcess s;
  ASSERT_TRUE(s.ok()) << s.log();
  json j = post_json(s, "/v1/completions", {{"model", "default"}, {"prompt", kPrompt}, {"max_tokens", 20}, {"temperature", 0}}, 200);
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(j["id"].get<std::string>().rfind("cmpl-", 0), 0u);
  EXPECT_EQ(j["model"], "default");
  EXPECT_TRUE(j["created"].is_number_integer());
  const json& c = j["choices"][0];
  EXPECT_EQ(c["index"], 0);
  EXPECT_TRUE(c["logprobs"].is_null());
  const json& u = j["usage"];
  EXPECT_GT(u["prompt_tokens"].get<int>(), 0);
  EXPECT_EQ(u["total_tokens"].get<int>(), u["prompt_tokens"].get<int>() + u["completion_tokens"].get<int>());
  // The CLI's greedy generation on the same prompt gives the same text.
  auto g = test::run_cli(std::string("generate -m models/default -p '") + kPrompt + "' -n 20 --temp 0");
  ASSERT_EQ(g.code, 0) << g.err;
  EXPECT_EQ(c["text"].get<std::string>() + "\n", g.out);
  if (c["finish_reason"] == "length") {
    EXPECT_EQ(u["completion_tokens"], 20);
  }
}

TEST(Serve, ChatCompletion) {
  ServeProcess s("--ctx 256");
  ASSERT_TRUE(s.ok()) << s.log();
  json body = {{"messages", {{{"role", "system"}, {"content", "You answer questions."}}, {{"role", "user"}, {"content", "What is 2+2?"}}}},
               {"max_tokens", 16},
               {"temperature", 0}};
  json j = post_json(s, "/v1/chat/completions", body, 200);
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["id"].get<std::string>().rfind("chatcmpl-", 0), 0u);
  const json& m = j["choices"][0]["message"];
  EXPECT_EQ(m["role"], "assistant");
  EXPECT_TRUE(m["content"].is_string());
  EXPECT_TRUE(j["choices"][0]["finish_reason"] == "stop" || j["choices"][0]["finish_reason"] == "length");
  EXPECT_LE(j["usage"]["completion_tokens"].get<int>(), 16);
  // Without max_tokens a chat answer may run to the end of the context, but not beyond it.
  body.erase("max_tokens");
  j = post_json(s, "/v1/chat/completions", body, 200);
  EXPECT_LE(j["usage"]["total_tokens"].get<int>(), 256);
  // The default template's stop string keeps the model from writing the user's next turn.
  EXPECT_EQ(j["choices"][0]["message"]["content"].get<std::string>().find("\nUser:"), std::string::npos);
}

TEST(Serve, StreamingEqualsWholeResponse) {
  ServeProcess s;
  ASSERT_TRUE(s.ok()) << s.log();
  json body = {{"prompt", kPrompt}, {"max_tokens", 24}, {"temperature", 0}};
  json whole = post_json(s, "/v1/completions", body, 200);
  body["stream"] = true;
  body["stream_options"] = {{"include_usage", true}};
  auto c = s.client();
  auto r = c.Post("/v1/completions", body.dump(), "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Type"), "text/event-stream");
  auto events = test::sse_data(r->body);
  ASSERT_GE(events.size(), 3u);
  EXPECT_EQ(events.back(), "[DONE]");
  std::string text, finish;
  json usage;
  for (size_t i = 0; i + 1 < events.size(); ++i) {
    json e = json::parse(events[i]);
    EXPECT_EQ(e["object"], "text_completion");
    EXPECT_EQ(e["id"], json::parse(events[0])["id"]);
    ASSERT_TRUE(e.contains("usage")) << "with include_usage every chunk has a usage field (null but in the last)";
    if (!e["usage"].is_null()) {
      usage = e["usage"];
      EXPECT_TRUE(e["choices"].empty());
      continue;
    }
    text += e["choices"][0]["text"].get<std::string>();
    if (!e["choices"][0]["finish_reason"].is_null()) finish = e["choices"][0]["finish_reason"];
  }
  EXPECT_EQ(text, whole["choices"][0]["text"]);
  EXPECT_EQ(finish, whole["choices"][0]["finish_reason"]);
  EXPECT_EQ(usage, whole["usage"]);

  // Chat: the first delta carries the role, the last one the finish reason.
  json chat = {{"messages", {{{"role", "user"}, {"content", "Hello"}}}}, {"max_tokens", 8}, {"temperature", 0}, {"stream", true}};
  r = c.Post("/v1/chat/completions", chat.dump(), "application/json");
  ASSERT_TRUE(r);
  events = test::sse_data(r->body);
  ASSERT_GE(events.size(), 3u);
  json first = json::parse(events[0]);
  EXPECT_EQ(first["object"], "chat.completion.chunk");
  EXPECT_EQ(first["choices"][0]["delta"]["role"], "assistant");
  EXPECT_FALSE(first.contains("usage"));  // not asked for
  json last = json::parse(events[events.size() - 2]);
  EXPECT_FALSE(last["choices"][0]["finish_reason"].is_null());
  EXPECT_EQ(events.back(), "[DONE]");
  chat.erase("stream");
  json whole_chat = post_json(s, "/v1/chat/completions", chat, 200);
  std::string streamed;
  for (size_t i = 0; i + 1 < events.size(); ++i) streamed += json::parse(events[i])["choices"][0]["delta"].value("content", "");
  EXPECT_EQ(streamed, whole_chat["choices"][0]["message"]["content"]);
}

TEST(Serve, ModelsHealthMetrics) {
  ServeProcess s("--alias tiny");
  ASSERT_TRUE(s.ok()) << s.log();
  auto c = s.client();
  json models = json::parse(c.Get("/v1/models")->body);
  EXPECT_EQ(models["object"], "list");
  EXPECT_EQ(models["data"][0]["id"], "tiny");
  EXPECT_EQ(models["data"][0]["object"], "model");
  EXPECT_EQ(c.Get("/v1/models/tiny")->status, 200);
  EXPECT_EQ(c.Get("/v1/models/other")->status, 404);
  auto h = c.Get("/health");
  EXPECT_EQ(h->status, 200);
  EXPECT_EQ(json::parse(h->body)["status"], "ok");
  post_json(s, "/v1/completions", {{"model", "tiny"}, {"prompt", "x"}, {"max_tokens", 3}}, 200);
  post_json(s, "/v1/completions", {{"prompt", 5}}, 400);
  auto m = c.Get("/metrics");
  ASSERT_EQ(m->status, 200);
  EXPECT_EQ(m->get_header_value("Content-Type").rfind("text/plain", 0), 0u);
  m->body = s.metrics_when([](const std::string& t) {
    return test::metric(t, "moeforge_request_duration_seconds_count{endpoint=\"/v1/completions\"}") == 2;
  });
  EXPECT_EQ(test::metric(m->body, "moeforge_requests_total{endpoint=\"/v1/completions\",status=\"200\"}"), 1);
  EXPECT_EQ(test::metric(m->body, "moeforge_requests_total{endpoint=\"/v1/completions\",status=\"400\"}"), 1);
  EXPECT_EQ(test::metric(m->body, "moeforge_completion_tokens_total"), 3);
  EXPECT_GT(test::metric(m->body, "moeforge_prompt_tokens_total"), 0);
  EXPECT_EQ(test::metric(m->body, "moeforge_queue_depth"), 0);
  EXPECT_EQ(test::metric(m->body, "moeforge_request_duration_seconds_count{endpoint=\"/v1/completions\"}"), 2);
  EXPECT_GT(test::metric(m->body, "process_resident_memory_bytes"), 1e6);
}

TEST(Serve, ErrorsAreOpenAIShaped4xx) {
  ServeProcess s("--ctx 64 --max-body 65536");
  ASSERT_TRUE(s.ok()) << s.log();
  auto c = s.client();
  auto raw = [&](const std::string& path, const std::string& body) {
    auto r = c.Post(path.c_str(), body, "application/json");
    EXPECT_TRUE(r);
    EXPECT_EQ(r->get_header_value("Content-Type"), "application/json") << path << " " << body.substr(0, 40);
    return std::make_pair(r ? r->status : 0, json::parse(r ? r->body : "", nullptr, false));
  };
  auto [st, j] = raw("/v1/completions", "{\"prompt\": \"x\"");  // malformed JSON
  EXPECT_EQ(st, 400);
  expect_error_shape(j);
  std::tie(st, j) = raw("/v1/chat/completions", "[1, 2]");
  EXPECT_EQ(st, 400);
  expect_error_shape(j);
  std::tie(st, j) = raw("/v1/completions", R"({"prompt": "x", "max_tokens": "ten"})");  // wrong type
  EXPECT_EQ(st, 400);
  expect_error_shape(j, "max_tokens");
  std::tie(st, j) = raw("/v1/chat/completions", R"({"messages": [{"role": "user", "content": 3}]})");
  EXPECT_EQ(st, 400);
  expect_error_shape(j, "messages[0].content");
  std::tie(st, j) = raw("/v1/completions", R"({"model": "gpt-4", "prompt": "x"})");  // unknown model
  EXPECT_EQ(st, 404);
  expect_error_shape(j, "model", "model_not_found");
  EXPECT_EQ(j["error"]["type"], "invalid_request_error");  // as OpenAI's API
  std::tie(st, j) = raw("/v1/completions", R"({"prompt": "x", "n": 2})");
  EXPECT_EQ(st, 400);
  expect_error_shape(j, "n");
  std::string long_prompt;
  for (int i = 0; i < 100; ++i) long_prompt += "the module provides ";
  std::tie(st, j) = raw("/v1/completions", json{{"prompt", long_prompt}}.dump());  // over the 64-token context
  EXPECT_EQ(st, 400);
  expect_error_shape(j, "prompt", "context_length_exceeded");
  std::tie(st, j) = raw("/v1/completions", json{{"prompt", "x"}, {"max_tokens", 64}}.dump());  // prompt + max_tokens > 64
  EXPECT_EQ(st, 400);
  expect_error_shape(j, "prompt", "context_length_exceeded");
  std::tie(st, j) = raw("/v1/completions", json{{"prompt", std::string(100000, 'a')}}.dump());  // over --max-body
  EXPECT_EQ(st, 413);
  expect_error_shape(j);
  std::tie(st, j) = raw("/v1/completions", json{{"prompt", {1, 2, 999999}}}.dump());  // token id outside the vocabulary
  EXPECT_EQ(st, 400);
  expect_error_shape(j, "prompt");
  std::tie(st, j) = raw("/v1/nothing", "{}");
  EXPECT_EQ(st, 404);
  expect_error_shape(j);
  auto g = c.Get("/v1/completions");
  EXPECT_EQ(g->status, 404);
  expect_error_shape(json::parse(g->body));
  // Still serving.
  post_json(s, "/v1/completions", {{"prompt", "x"}, {"max_tokens", 2}}, 200);
}

TEST(Serve, BodyContentTypeDoesNotMatter) {
  // `curl -d` sends application/x-www-form-urlencoded: httplib refused such bodies over 8 KiB
  // with 413 although they were far under --max-body.
  ServeProcess s;
  ASSERT_TRUE(s.ok()) << s.log();
  auto c = s.client();
  const std::string body = json{{"prompt", "x"}, {"max_tokens", 2}, {"user", std::string(20000, 'u')}}.dump();
  for (const char* type : {"application/x-www-form-urlencoded", "application/json", "text/plain"}) {
    auto r = c.Post("/v1/completions", body, type);
    ASSERT_TRUE(r) << type;
    EXPECT_EQ(r->status, 200) << type << ": " << r->body.substr(0, 200);
  }
  auto r = c.Post("/v1/chat/completions", "--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n1\r\n--b--\r\n",
                  "multipart/form-data; boundary=b");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  expect_error_shape(json::parse(r->body, nullptr, false));
  post_json(s, "/v1/completions", {{"prompt", "x"}, {"max_tokens", 2}}, 200);  // still serving
}

TEST(Serve, ApiKey) {
  ServeProcess s("--api-key s3cret");
  ASSERT_TRUE(s.ok()) << s.log();
  auto c = s.client();
  const std::string body = json{{"prompt", "x"}, {"max_tokens", 2}}.dump();
  auto r = c.Post("/v1/completions", body, "application/json");
  EXPECT_EQ(r->status, 401);
  EXPECT_EQ(r->get_header_value("WWW-Authenticate"), "Bearer");
  expect_error_shape(json::parse(r->body), "", "invalid_api_key");
  EXPECT_EQ(json::parse(r->body)["error"]["type"], "invalid_request_error");  // as OpenAI's API
  r = c.Post("/v1/completions", {{"Authorization", "Bearer wrong"}}, body, "application/json");
  EXPECT_EQ(r->status, 401);
  r = c.Post("/v1/completions", {{"Authorization", "Bearer s3cret"}}, body, "application/json");
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(c.Get("/health")->status, 200);  // open for probes
  EXPECT_EQ(c.Get("/v1/models")->status, 401);
  EXPECT_EQ(c.Get("/metrics")->status, 401);
  EXPECT_EQ(c.Get("/metrics", {{"Authorization", "Bearer s3cret"}})->status, 200);
}

TEST(Serve, BindsToLoopbackByDefault) {
  ServeProcess s;
  ASSERT_TRUE(s.ok()) << s.log();
  EXPECT_NE(s.log().find("listening on http://127.0.0.1:"), std::string::npos) << s.log();
}

TEST(Serve, HelpAndBadOptions) {
  auto r = test::run_cli("serve --help");
  EXPECT_EQ(r.code, 0);
  for (const char* opt : {"--host", "--port", "--parallel", "--ctx", "--api-key", "--queue", "--max-body", "--threads"})
    EXPECT_NE(r.out.find(opt), std::string::npos) << opt;
  r = test::run_cli("serve -m models/default --parallel 0");
  EXPECT_EQ(r.code, 2);
  r = test::run_cli("serve -m models/nonexistent --port 0");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("nonexistent"), std::string::npos);
  r = test::run_cli("serve -m models/default --port 0 --chat-template jinja");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("chat template"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace mf

// A real .moe (carved by calibrate + build-moe from small committed domain texts): every
// response reports the routing decision, requests can force an expert or the dense model.
namespace mf {
namespace {

TEST(ServeMoe, RoutesReportsAndForcesExperts) {
  const std::string dir = test::temp_dir();
  std::string domains;
  for (const char* d : {"code", "math", "prose", "reference"}) domains += std::string(" --domain ") + d + "=tests/data/moe/" + d + ".txt";
  auto c = test::run_cli("calibrate -m models/default" + domains + " --tokens-per-domain 2048 --sample-tokens 32 --micro-clusters 4 -t 1 -o " +
                         dir + "/stats.gguf");
  ASSERT_EQ(c.code, 0) << c.err;
  auto b = test::run_cli("build-moe -m models/default -s " + dir + "/stats.gguf --density 0.5 --subdomains 2 -o " + dir + "/tiny.moe");
  ASSERT_EQ(b.code, 0) << b.err;
  ServeProcess s("", dir + "/tiny.moe");
  ASSERT_TRUE(s.ok()) << s.log();
  EXPECT_NE(s.log().find("8 experts"), std::string::npos) << s.log();

  json j = post_json(s, "/v1/completions", {{"model", "tiny"}, {"prompt", "def parse(args):\n    return"}, {"max_tokens", 8}, {"temperature", 0}}, 200);
  const json& route = j["moeforge"]["route"];
  for (const char* key : {"domain", "subdomain", "expert", "confidence", "density", "forced"}) EXPECT_TRUE(route.contains(key)) << key;
  EXPECT_EQ(route["forced"], false);
  EXPECT_GT(route["confidence"].get<double>(), 0.0);

  json dense = post_json(s, "/v1/completions", {{"prompt", "def parse(args):"}, {"max_tokens", 12}, {"temperature", 0}, {"moeforge", {{"expert", "dense"}}}}, 200);
  EXPECT_EQ(dense["moeforge"]["route"]["expert"], "dense");
  EXPECT_DOUBLE_EQ(dense["moeforge"]["route"]["density"].get<double>(), 1.0);
  json code = post_json(s, "/v1/completions", {{"prompt", "def parse(args):"}, {"max_tokens", 12}, {"temperature", 0}, {"moeforge", {{"expert", "code/0"}}}}, 200);
  EXPECT_EQ(code["moeforge"]["route"]["expert"], "code/0");
  EXPECT_EQ(code["moeforge"]["route"]["domain"], "code");
  EXPECT_EQ(code["moeforge"]["route"]["forced"], true);
  EXPECT_DOUBLE_EQ(code["moeforge"]["route"]["density"].get<double>(), 0.5);
  // Same as the CLI's generate with the same expert forced.
  auto g = test::run_cli("generate -m " + dir + "/tiny.moe -p 'def parse(args):' -n 12 --temp 0 --domain code/0");
  ASSERT_EQ(g.code, 0) << g.err;
  EXPECT_EQ(code["choices"][0]["text"].get<std::string>() + "\n", g.out);

  json chat = post_json(s, "/v1/chat/completions",
                        {{"messages", {{{"role", "user"}, {"content", "Solve 3 + 4."}}}}, {"max_tokens", 6}, {"moeforge", {{"expert", "math"}}}}, 200);
  EXPECT_EQ(chat["moeforge"]["route"]["domain"], "math");
  json err = post_json(s, "/v1/completions", {{"prompt", "x"}, {"moeforge", {{"expert", "cooking"}}}}, 400);
  expect_error_shape(err, "moeforge.expert", "unknown_expert");
  auto models = json::parse(s.client().Get("/v1/models")->body);
  EXPECT_GE(models["data"][0]["moeforge"]["experts"].size(), 9u);
  std::string m = s.metrics_when([](const std::string& t) { return t.find("expert=\"code/0\",forced=\"true\"} 1") != std::string::npos; });
  EXPECT_NE(m.find("moeforge_routed_prompts_total{domain=\"code\",expert=\"code/0\",forced=\"true\"} 1"), std::string::npos) << m;
}

}  // namespace
}  // namespace mf
