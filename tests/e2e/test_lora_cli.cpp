// LoRA adapters end to end: --lora on generate / logits / bench, the lora inspect, convert and
// merge commands (merged equals applied per token), and the errors for bad adapters and flags.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "test_util.h"

namespace mf {
namespace {

using json = nlohmann::json;
using test::run_cli;
const std::string kBase = "tests/golden/data/models/llama-gqa4-untied";
const std::string kPeft = "tests/golden/data/lora/llama-gqa4-untied-r4";
const std::string kRslora = "tests/golden/data/lora/llama-gqa4-untied-rslora";
const std::string kGguf = "tests/golden/data/lora/llama-gqa4-untied-r4.gguf";

std::vector<float> last_row(const std::string& out) {
  json j = json::parse(out);
  return j["logits"].back().get<std::vector<float>>();
}

TEST(LoraCli, InspectDescribesTheAdapter) {
  auto r = run_cli("lora inspect " + kRslora + " -m " + kBase + " --json");
  ASSERT_EQ(r.code, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["rank"], 6);
  EXPECT_EQ(j["rslora"], true);
  EXPECT_EQ(j["targets"]["down_proj"]["rank"], 3);
  EXPECT_NEAR(j["targets"]["v_proj"]["scale"].get<double>(), 10.0 / std::sqrt(6.0), 1e-5);
  EXPECT_FALSE(j["targets"].contains("k_proj"));
}

TEST(LoraCli, MergedModelGivesTheLogitsOfTheAdapterAppliedPerToken) {
  const std::string dir = test::temp_dir();
  auto merged = run_cli("lora merge -m " + kBase + " --lora " + kGguf + " -o " + dir + "/merged.gguf --type f32");
  ASSERT_EQ(merged.code, 0) << merged.err;
  const std::string toks = " --tokens 5,17,300,2,999";
  auto a = run_cli("logits -m " + kBase + " --lora " + kPeft + toks);
  auto b = run_cli("logits -m " + dir + "/merged.gguf" + toks);
  auto base = run_cli("logits -m " + kBase + toks);
  ASSERT_EQ(a.code, 0) << a.err;
  ASSERT_EQ(b.code, 0) << b.err;
  const std::vector<float> x = last_row(a.out), y = last_row(b.out), z = last_row(base.out);
  double moved = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    ASSERT_NEAR(x[i], y[i], 1e-2 * (1 + std::abs(x[i]))) << i;
    moved = std::max(moved, double(std::abs(x[i] - z[i])));
  }
  EXPECT_GT(moved, 0.05);
  // A weighted merge of two adapters; per-token routing cannot be merged.
  auto two = run_cli("lora merge -m " + kBase + " --lora a=" + kPeft + " --lora b=" + kRslora +
                     " --lora-route a:0.7,b:0.3 -o " + dir + "/two.gguf --type f16");
  EXPECT_EQ(two.code, 0) << two.err;
  auto arrow = run_cli("lora merge -m " + kBase + " --lora a=" + kPeft + " --lora b=" + kRslora + " --lora-route arrow -o " +
                       dir + "/x.gguf");
  EXPECT_NE(arrow.code, 0);
  EXPECT_NE(arrow.err.find("cannot be merged"), std::string::npos) << arrow.err;
  EXPECT_FALSE(std::filesystem::exists(dir + "/x.gguf"));
}

TEST(LoraCli, ConvertWritesPeftThatLoadsBack) {
  const std::string dir = test::temp_dir() + "/peft";
  auto c = run_cli("lora convert " + kGguf + " -m " + kBase + " -o " + dir);
  ASSERT_EQ(c.code, 0) << c.err;
  EXPECT_TRUE(std::filesystem::exists(dir + "/adapter_config.json"));
  const std::string toks = " --tokens 1,2,3";
  auto a = run_cli("logits -m " + kBase + " --lora " + dir + toks);
  auto b = run_cli("logits -m " + kBase + " --lora " + kGguf + toks);
  ASSERT_EQ(a.code, 0) << a.err;
  EXPECT_EQ(last_row(a.out), last_row(b.out));
}

TEST(LoraCli, GenerateAndBenchReportTheLibraryAndItsRouting) {
  auto g = run_cli("generate -m " + kBase + " --lora a=" + kPeft + " --lora b=" + kRslora +
                   " --lora-route arrow --lora-top-k 1 -p hello -n 4 --json");
  ASSERT_EQ(g.code, 0) << g.err;
  json j = json::parse(g.out);
  ASSERT_TRUE(j.contains("lora"));
  EXPECT_EQ(j["lora"]["route"], "arrow");
  ASSERT_EQ(j["lora"]["adapters"].size(), 2u);
  int64_t picks = 0;
  for (const json& a : j["lora"]["adapters"]) picks += a["picks"].get<int64_t>();
  EXPECT_GT(picks, 0);
  auto b = run_cli("bench -m " + kBase + " --lora " + kPeft + " --prompt-tokens 8 --gen-tokens 4 --reps 1 --json");
  ASSERT_EQ(b.code, 0) << b.err;
  EXPECT_EQ(json::parse(b.out)["lora"]["adapters"][0]["name"], "llama-gqa4-untied-r4");
}

TEST(LoraCli, BadAdaptersAndFlagsFailWithTheReason) {
  auto expect_fail = [](const std::string& args, const std::string& needle) {
    auto r = run_cli(args);
    EXPECT_NE(r.code, 0) << args;
    EXPECT_NE(r.err.find(needle), std::string::npos) << args << ": " << r.err;
  };
  expect_fail("generate -m " + kBase + " --lora tests/golden/data/lora/gemma3-swa6-r8 -p hi -n 1", "another base model");
  expect_fail("generate -m " + kBase + " --lora /nonexistent/adapter -p hi -n 1", "does not exist");
  expect_fail("generate -m " + kBase + " --lora a=" + kPeft + " --lora-route b -p hi -n 1", "unknown adapter 'b'");
  expect_fail("generate -m " + kBase + " --lora-route arrow -p hi -n 1", "--lora-route needs adapters");
  expect_fail("generate -m " + kBase + " --lora " + kPeft + " --lora " + kPeft + " -p hi -n 1", "two adapters are named");
  expect_fail("lora inspect " + kBase + " -m " + kBase, "not a PEFT adapter");
}

}  // namespace
}  // namespace mf
