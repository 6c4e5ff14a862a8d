// LoRA libraries in the server, in-process: requests name an adapter, a list or "auto"; slots
// with different adapters decode in one batch and each gets the greedy text of its adapter
// served alone; the response reports the adapters used; unknown names are 400s.
#include <gtest/gtest.h>
#include <httplib.h>

#include <future>
#include <nlohmann/json.hpp>
#include <thread>

#include "adapters/lora_library.h"
#include "serve/lora_seam.h"
#include "serve/server.h"
#include "test_serve_util.h"

namespace mf::serve {
namespace {

using json = nlohmann::json;

class LoraServer : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = load_model("models/default");
    lib_ = std::make_shared<LoraLibrary>();
    for (int i = 0; i < 3; ++i)
      lib_->adapters.push_back(init_lora(*model_, std::string(1, char('a' + i)), 4, 16.0f, {"all"}, /*random_b=*/true, 10 + i));
  }
  void TearDown() override {
    if (!server_) return;
    server_->shutdown();
    thread_.join();
  }
  void start(bool with_library, const std::string& default_route = "a") {
    ServerOptions o;
    o.port = 0;
    o.model_id = "default";
    o.log_requests = false;
    o.scheduler.n_ctx = 96;
    o.scheduler.n_parallel = 4;
    o.scheduler.step_delay_ms = 5;  // requests overlap, so they share batched steps
    AdapterLibrary lib;
    if (with_library) {
      base_ = std::make_unique<RoutedLora>(lib_, make_lora_router(*lib_, default_route, 2));
      lib = lora_adapter_library(*model_, *base_, 2);
    }
    server_ = std::make_unique<Server>(*model_, pool_, o, Router{}, lib);
    port_ = server_->bind();
    thread_ = std::thread([this] { server_->run(); });
  }
  httplib::Result post(const json& body) {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(60, 0);
    return c.Post("/v1/completions", body.dump(), "application/json");
  }
  // The greedy text of the prompt with `spec`'s update applied alone.
  std::string reference(const std::string& prompt, int n, const std::string& spec) {
    std::unique_ptr<RoutedLora> lora;
    if (spec != "none") lora = std::make_unique<RoutedLora>(lib_, make_lora_router(*lib_, spec == "auto" ? "arrow" : spec, 2));
    return test::greedy_text(*model_, ref_pool_, model_->require_tokenizer().encode(prompt, true), n, nullptr, lora.get());
  }

  std::unique_ptr<Model> model_;
  std::shared_ptr<LoraLibrary> lib_;
  std::unique_ptr<RoutedLora> base_;
  ThreadPool pool_{2}, ref_pool_{1};
  std::unique_ptr<Server> server_;
  std::thread thread_;
  int port_ = 0;
};

const char* kPrompt = "And it came to pass, when the";

TEST_F(LoraServer, MixedAdaptersInOneBatchEachMatchTheirAdapterAlone) {
  start(true);
  const std::vector<json> choices = {"a", "b", json::array({"a", "c"}), "auto", "none"};
  const std::vector<std::string> specs = {"a", "b", "a,c", "auto", "none"};
  std::vector<std::future<httplib::Result>> replies;
  for (const json& c : choices)
    replies.push_back(std::async(std::launch::async, [this, c] {
      return post({{"prompt", kPrompt}, {"max_tokens", 20}, {"temperature", 0}, {"moeforge", {{"adapters", c}}}});
    }));
  std::set<std::string> texts;
  for (size_t i = 0; i < replies.size(); ++i) {
    auto r = replies[i].get();
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200) << r->body;
    const json j = json::parse(r->body);
    const std::string text = j["choices"][0]["text"];
    EXPECT_EQ(text, reference(kPrompt, 20, specs[i])) << specs[i];
    texts.insert(text);
    if (specs[i] == "none") {
      EXPECT_FALSE(j.contains("moeforge")) << r->body;
      continue;
    }
    std::set<std::string> used;
    for (const json& a : j["moeforge"]["adapters"]["adapters"]) used.insert(a["name"].get<std::string>());
    if (specs[i] == "a") EXPECT_EQ(used, std::set<std::string>{"a"});
    if (specs[i] == "a,c") EXPECT_EQ(used, (std::set<std::string>{"a", "c"}));
    if (specs[i] == "auto") EXPECT_EQ(j["moeforge"]["adapters"]["route"], "arrow");
  }
  EXPECT_GE(texts.size(), 4u) << "adapters should change the text";
}

TEST_F(LoraServer, DefaultRouteUnknownNamesAndModelsListing) {
  start(true, "b");
  auto r = post({{"prompt", kPrompt}, {"max_tokens", 8}, {"temperature", 0}});
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(json::parse(r->body)["choices"][0]["text"], reference(kPrompt, 8, "b"));
  r = post({{"prompt", kPrompt}, {"moeforge", {{"adapters", "poetry"}}}});
  ASSERT_EQ(r->status, 400);
  json e = json::parse(r->body);
  EXPECT_EQ(e["error"]["code"], "unknown_adapter");
  EXPECT_EQ(e["error"]["param"], "moeforge.adapters");
  EXPECT_NE(e["error"]["message"].get<std::string>().find("poetry"), std::string::npos);
  r = post({{"prompt", kPrompt}, {"moeforge", {{"adapters", json::array({"a", 3})}}}});
  EXPECT_EQ(r->status, 400);
  r = post({{"prompt", kPrompt}, {"moeforge", {{"adapters", ""}}}});
  EXPECT_EQ(r->status, 400);
  httplib::Client c("127.0.0.1", port_);
  EXPECT_EQ(json::parse(c.Get("/v1/models")->body)["data"][0]["moeforge"]["adapters"], json({"a", "b", "c"}));
}

TEST_F(LoraServer, ServerWithoutALibraryRefusesAdapters) {
  start(false);
  auto r = post({{"prompt", kPrompt}, {"max_tokens", 4}, {"moeforge", {{"adapters", "a"}}}});
  ASSERT_EQ(r->status, 400);
  EXPECT_EQ(json::parse(r->body)["error"]["code"], "unknown_adapter");
  r = post({{"prompt", kPrompt}, {"max_tokens", 4}, {"moeforge", {{"adapters", "none"}}}});
  EXPECT_EQ(r->status, 200);
}

}  // namespace
}  // namespace mf::serve
