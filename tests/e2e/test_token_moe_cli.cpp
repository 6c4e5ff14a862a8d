// Token-routed MoE models end to end: routing flags on the CLI (generate, perplexity, bench,
// route), their errors, and per-request routing plus routing metrics in the server.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "test_serve_util.h"
#include "test_util.h"

namespace mf {
namespace {

using json = nlohmann::json;
using test::run_cli;
const std::string kMixtral = "tests/golden/data/models/mixtral-e8-top2";
const std::string kQwenMoe = "tests/golden/data/models/qwen2moe-e8-top4-shared-dense";

TEST(TokenMoeCli, RouteJsonReportsExpertsPerTokenAndLayerStats) {
  auto r = run_cli("route -m " + kQwenMoe + " -p 'The answer is 42' --json");
  ASSERT_EQ(r.code, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["routing"]["top_k"], 4);
  EXPECT_EQ(j["routing"]["renormalize"], false);
  // Layers 0 and 2 are MoE, layer 1 is dense (mlp_only_layers).
  ASSERT_EQ(j["stats"]["layers"].size(), 2u);
  EXPECT_EQ(j["stats"]["layers"][0]["layer"], 0);
  EXPECT_EQ(j["stats"]["layers"][1]["layer"], 2);
  const int n = int(j["tokens"].size());
  ASSERT_GT(n, 0);
  for (const json& l : j["stats"]["layers"]) {
    int64_t sum = 0;
    for (auto& c : l["tokens_per_expert"]) sum += c.get<int64_t>();
    EXPECT_EQ(sum, 4 * n);  // top-4 for every token
    EXPECT_DOUBLE_EQ(l["mean_experts_used"].get<double>(), 4.0);
    EXPECT_GE(l["load_imbalance"].get<double>(), 1.0);
  }
  for (const json& t : j["tokens"]) {
    ASSERT_TRUE(t["experts"].contains("0") && t["experts"].contains("2") && !t["experts"].contains("1"));
    EXPECT_EQ(t["experts"]["0"].size(), 4u);
  }
}

TEST(TokenMoeCli, TopPAndExpertsUsedChangeRoutingAndText) {
  auto p = run_cli("route -m " + kMixtral + " -p 'The answer is 42' --json --expert-top-p 0.9 --max-experts 6");
  ASSERT_EQ(p.code, 0) << p.err;
  json j = json::parse(p.out);
  EXPECT_FLOAT_EQ(j["routing"]["top_p"].get<float>(), 0.9f);
  const double used = j["stats"]["mean_experts_used"].get<double>();
  EXPECT_GT(used, 1.0);
  EXPECT_LE(used, 6.0);
  auto a = run_cli("generate -m " + kMixtral + " -p 'The answer is' -n 12 --temp 0");
  auto b = run_cli("generate -m " + kMixtral + " -p 'The answer is' -n 12 --temp 0 --experts-used 8");
  ASSERT_EQ(a.code, 0) << a.err;
  ASSERT_EQ(b.code, 0) << b.err;
  EXPECT_NE(a.out, b.out);
  auto ppl = run_cli("perplexity -m " + kMixtral + " -f " + test::shared_dir() + "/models/tiny-llama-a/f1500.txt --experts-used 1");
  EXPECT_EQ(ppl.code, 0) << ppl.err;
}

TEST(TokenMoeCli, BenchJsonCarriesRoutingAndActiveBytes) {
  auto k2 = run_cli("bench -m " + kMixtral + " -p 16 -n 8 -r 1 --json");
  auto k1 = run_cli("bench -m " + kMixtral + " -p 16 -n 8 -r 1 --json --experts-used 1");
  ASSERT_EQ(k2.code, 0) << k2.err;
  ASSERT_EQ(k1.code, 0) << k1.err;
  json a = json::parse(k2.out), b = json::parse(k1.out);
  EXPECT_DOUBLE_EQ(a["routing"]["decode"]["mean_experts_used"].get<double>(), 2.0);
  EXPECT_DOUBLE_EQ(b["routing"]["decode"]["mean_experts_used"].get<double>(), 1.0);
  EXPECT_LT(b["decode_weight_bytes"].get<int64_t>(), a["decode_weight_bytes"].get<int64_t>());
  EXPECT_EQ(a["routing"]["decode"]["layers"].size(), 2u);
}

TEST(TokenMoeCli, BadRoutingFlagsGetOneLineErrors) {
  struct Case {
    std::string args, needle;
  } cases[] = {
      {"generate -m " + kMixtral + " -p hi --experts-used 9", "--experts-used 9: the model has 8 experts"},
      {"generate -m " + kMixtral + " -p hi --expert-top-p 1.5", "--expert-top-p"},
      {"generate -m " + kMixtral + " -p hi --expert-top-p 0 --max-experts 3", "--expert-top-p"},
      {"generate -m " + kMixtral + " -p hi --expert-top-p 0.5 --min-experts 5 --max-experts 3", "--min-experts 5"},
      {"generate -m tests/golden/data/models/llama-gqa4-untied -p hi --experts-used 1", "is dense"},
      {"route -m tests/golden/data/models/llama-gqa4-untied -p hi", "no token routing"},
  };
  for (const Case& c : cases) {
    auto r = run_cli(c.args);
    EXPECT_EQ(r.code, 1) << c.args;
    EXPECT_NE(r.err.find(c.needle), std::string::npos) << c.args << ": " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
}

// A checkpoint whose expert tensors disagree with its config is refused with the tensor named.
TEST(TokenMoeCli, MissingOrMisshapenExpertTensorsAreNamed) {
  std::string dir = test::temp_dir() + "/moe";
  std::filesystem::create_directories(dir);
  for (const char* f : {"model.safetensors", "tokenizer.json", "tokenizer_config.json"})
    std::filesystem::copy_file(kMixtral + "/" + f, dir + "/" + f);
  json cfg = json::parse(test::read_file(kMixtral + "/config.json"));
  cfg["num_local_experts"] = 9;  // one more than the file holds
  test::write_file(dir + "/config.json", cfg.dump());
  auto r = run_cli("generate -m " + dir + " -p hi -n 1");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("'model.layers.0.block_sparse_moe.gate.weight' has shape [8, 64], expected [9, 64]"), std::string::npos)
      << r.err;
  // An expert's tensor renamed in the safetensors header (same length, so offsets stay valid).
  std::string st = test::read_file(kMixtral + "/model.safetensors");
  const std::string from = "layers.1.block_sparse_moe.experts.5.w3.weight";
  const size_t at = st.find(from);
  ASSERT_NE(at, std::string::npos);
  st.replace(at, from.size(), "layers.1.block_sparse_moe.experts.5.wX.weight");
  test::write_file(dir + "/model.safetensors", st);
  cfg["num_local_experts"] = 8;
  test::write_file(dir + "/config.json", cfg.dump());
  r = run_cli("generate -m " + dir + " -p hi -n 1");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("missing tensor 'model.layers.1.block_sparse_moe.experts.5.w3.weight' (expert 5 of 8)"), std::string::npos)
      << r.err;
  std::filesystem::copy_file(kMixtral + "/model.safetensors", dir + "/model.safetensors",
                             std::filesystem::copy_options::overwrite_existing);
  cfg["num_experts_per_tok"] = 9;  // top-k above the expert count
  test::write_file(dir + "/config.json", cfg.dump());
  r = run_cli("generate -m " + dir + " -p hi -n 1");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("experts used per token 9"), std::string::npos) << r.err;
  cfg["num_experts_per_tok"] = 2;
  cfg["intermediate_size"] = 48;  // the expert tensors are 32 wide
  test::write_file(dir + "/config.json", cfg.dump());
  r = run_cli("generate -m " + dir + " -p hi -n 1");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("has shape [32, 64], expected [48, 64]"), std::string::npos) << r.err;
}

TEST(TokenMoeServe, PerRequestRoutingAndRoutingMetrics) {
  test::ServeProcess s("", kMixtral);
  ASSERT_TRUE(s.ok()) << s.log();
  auto cli = s.client();
  auto post = [&](const json& body) {
    auto res = cli.Post("/v1/completions", body.dump(), "application/json");
    EXPECT_TRUE(res) << "no response";
    return std::pair{res ? res->status : 0, res ? json::parse(res->body) : json()};
  };
  auto [st1, one] = post({{"prompt", "The answer is"}, {"max_tokens", 6}, {"temperature", 0}, {"moeforge", {{"experts_used", 1}}}});
  ASSERT_EQ(st1, 200) << one.dump();
  EXPECT_EQ(one["moeforge"]["expert_routing"]["top_k"], 1);
  auto [st2, dflt] = post({{"prompt", "The answer is"}, {"max_tokens", 6}, {"temperature", 0}});
  ASSERT_EQ(st2, 200);
  EXPECT_EQ(dflt["moeforge"]["expert_routing"]["top_k"], 2);
  // The request's routing is the CLI's: same text as generate --experts-used 1 (both JSON, so
  // pieces that split a UTF-8 character read the same).
  auto g = run_cli("generate -m " + kMixtral + " -p 'The answer is' -n 6 --temp 0 --experts-used 1 --json");
  ASSERT_EQ(g.code, 0) << g.err;
  EXPECT_EQ(one["choices"][0]["text"], json::parse(g.out)["text"]);
  auto [st3, bad] = post({{"prompt", "x"}, {"max_tokens", 2}, {"moeforge", {{"experts_used", 9}}}});
  EXPECT_EQ(st3, 400);
  EXPECT_EQ(bad["error"]["param"], "moeforge.experts_used");
  auto [st4, badp] = post({{"prompt", "x"}, {"max_tokens", 2}, {"moeforge", {{"expert_top_p", 0}}}});
  EXPECT_EQ(st4, 400);
  EXPECT_EQ(badp["error"]["param"], "moeforge.expert_top_p");
  std::string m = s.metrics_when([](const std::string& t) { return t.find("moeforge_experts_per_token") != std::string::npos; });
  EXPECT_GT(test::metric(m, "moeforge_experts_per_token{layer=\"0\"}"), 1.0);
  EXPECT_GE(test::metric(m, "moeforge_expert_load_imbalance{layer=\"1\"}"), 1.0);
  EXPECT_GT(test::metric(m, "moeforge_router_entropy_nats{layer=\"0\"}"), 0.0);
}

}  // namespace
}  // namespace mf
