// The routing seam, in-process: a Server on a loopback port with a fake RouteFn whose
// "experts" keep a prefix of the FFN neurons. The route decides the weights a request runs
// with (its text equals a greedy run with those weights), it is reported in the "moeforge"
// extension field and in /metrics, and a request can force an expert or the dense model.
#include <gtest/gtest.h>
#include <httplib.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "core/error.h"
#include "serve/server.h"
#include "test_serve_util.h"

namespace mf::serve {
namespace {

using json = nlohmann::json;

class RoutedServer : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = load_model("models/default");
    half_ = test::truncated_expert(*model_, model_->hp.n_ff / 2);
    quarter_ = test::truncated_expert(*model_, model_->hp.n_ff / 4);
  }
  void TearDown() override { stop(); }

  void start(bool with_router) {
    ServerOptions o;
    o.port = 0;
    o.model_id = "default";
    o.log_requests = false;
    o.scheduler.n_ctx = 128;
    Router r;
    if (with_router) {
      r.experts = {"half", "quarter/a"};
      r.route = [this](std::span<const int32_t> tokens, const std::string& forced) {
        EXPECT_FALSE(tokens.empty());
        if (forced.empty()) return RouteInfo{"half", "", 0.9, 0.5, &half_.layers, false, ""};
        if (forced == "dense") return RouteInfo{"dense", "", 1.0, 1.0, nullptr, false, ""};
        if (forced == "half") return RouteInfo{"half", "", 1.0, 0.5, &half_.layers, false, ""};
        if (forced == "quarter" || forced == "quarter/a") return RouteInfo{"quarter", "a", 1.0, 0.25, &quarter_.layers, false, ""};
        fail("unknown expert '", forced, "' (dense, half, quarter/a)");
      };
    }
    server_ = std::make_unique<Server>(*model_, pool_, o, r);
    port_ = server_->bind();
    thread_ = std::thread([this] { server_->run(); });
  }
  void stop() {
    if (!server_) return;
    server_->shutdown();
    thread_.join();
    server_.reset();
  }
  httplib::Result post(const json& body, const std::string& path = "/v1/completions") {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(30, 0);
    return c.Post(path.c_str(), body.dump(), "application/json");
  }
  std::string reference(const std::string& prompt, int n, const std::vector<LayerWeights>* layers) {
    return test::greedy_text(*model_, ref_pool_, model_->require_tokenizer().encode(prompt, true), n, layers);
  }

  std::unique_ptr<Model> model_;
  ThreadPool pool_{1}, ref_pool_{1};
  test::TruncatedExpert half_, quarter_;
  std::unique_ptr<Server> server_;
  std::thread thread_;
  int port_ = 0;
};

const char* kPrompt = "And it came to pass, when the";

TEST_F(RoutedServer, RouteChoosesTheWeightsAndIsReported) {
  start(true);
  auto r = post({{"prompt", kPrompt}, {"max_tokens", 24}, {"temperature", 0}});
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  json j = json::parse(r->body);
  const json& route = j["moeforge"]["route"];
  EXPECT_EQ(route["domain"], "half");
  EXPECT_EQ(route["subdomain"], "");
  EXPECT_EQ(route["expert"], "half");
  EXPECT_DOUBLE_EQ(route["confidence"].get<double>(), 0.9);
  EXPECT_DOUBLE_EQ(route["density"].get<double>(), 0.5);
  EXPECT_EQ(route["forced"], false);
  EXPECT_EQ(r->get_header_value("X-Moeforge-Expert"), "half");
  const std::string half_text = j["choices"][0]["text"];
  EXPECT_EQ(half_text, reference(kPrompt, 24, &half_.layers));

  // Forcing the dense model runs the dense weights: a different text, the dense reference.
  r = post({{"prompt", kPrompt}, {"max_tokens", 24}, {"temperature", 0}, {"moeforge", {{"expert", "dense"}}}});
  ASSERT_EQ(r->status, 200) << r->body;
  j = json::parse(r->body);
  EXPECT_EQ(j["moeforge"]["route"]["expert"], "dense");
  EXPECT_EQ(j["moeforge"]["route"]["forced"], true);
  const std::string dense_text = j["choices"][0]["text"];
  EXPECT_EQ(dense_text, reference(kPrompt, 24, nullptr));
  EXPECT_NE(dense_text, half_text);

  r = post({{"messages", {{{"role", "user"}, {"content", "hi"}}}}, {"max_tokens", 8}, {"temperature", 0},
            {"moeforge", {{"expert", "quarter/a"}}}},
           "/v1/chat/completions");
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(json::parse(r->body)["moeforge"]["route"]["expert"], "quarter/a");

  r = post({{"prompt", kPrompt}, {"moeforge", {{"expert", "poetry"}}}});
  ASSERT_EQ(r->status, 400);
  j = json::parse(r->body);
  EXPECT_EQ(j["error"]["code"], "unknown_expert");
  EXPECT_EQ(j["error"]["param"], "moeforge.expert");
  EXPECT_NE(j["error"]["message"].get<std::string>().find("poetry"), std::string::npos);

  // Streams carry the route on their first chunk.
  r = post({{"prompt", kPrompt}, {"max_tokens", 4}, {"stream", true}});
  ASSERT_EQ(r->status, 200);
  auto first = r->body.substr(6, r->body.find("\n\n") - 6);  // after "data: "
  EXPECT_EQ(json::parse(first)["moeforge"]["route"]["expert"], "half");

  httplib::Client c("127.0.0.1", port_);
  auto models = c.Get("/v1/models");
  EXPECT_EQ(json::parse(models->body)["data"][0]["moeforge"]["experts"], json({"half", "quarter/a"}));
  std::string metrics = c.Get("/metrics")->body;
  EXPECT_NE(metrics.find("moeforge_routed_prompts_total{domain=\"half\",expert=\"half\",forced=\"false\"} 2\n"), std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("moeforge_routed_prompts_total{domain=\"dense\",expert=\"dense\",forced=\"true\"} 1\n"), std::string::npos);
  EXPECT_NE(metrics.find("moeforge_routed_prompts_total{domain=\"quarter\",expert=\"quarter/a\",forced=\"true\"} 1\n"),
            std::string::npos);
}

TEST_F(RoutedServer, DenseServerHasNoRouteField) {
  start(false);
  auto r = post({{"prompt", kPrompt}, {"max_tokens", 4}, {"moeforge", {{"expert", "dense"}}}});
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_FALSE(json::parse(r->body).contains("moeforge"));
  r = post({{"prompt", kPrompt}, {"moeforge", {{"expert", "half"}}}});
  EXPECT_EQ(r->status, 400);
}

}  // namespace
}  // namespace mf::serve
