// LoRA adapters end to end: --lora on generate / logits / bench, the lora inspect, convert,
// init, describe, eval and merge commands (merged equals applied per token), and the errors
// for bad adapters and flags.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <sstream>
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

TEST(LoraCli, InitDescribeAndEvalCompareRoutesOnTasks) {
  const std::string dir = test::temp_dir();
  const std::string base = "models/default";
  for (const char* name : {"math", "story"}) {
    auto r = run_cli("lora init -m " + base + " -o " + dir + "/" + name + " --rank 4 --random-b --seed " +
                     std::to_string(name[0]));
    ASSERT_EQ(r.code, 0) << r.err;
  }
  auto d = run_cli("lora describe " + dir + "/math -m " + base + " --text 'Grade school math word problems.'");
  ASSERT_EQ(d.code, 0) << d.err;
  EXPECT_EQ(test::read_file(dir + "/math/description.txt"), "Grade school math word problems.\n");
  // The base model writes the other description from examples (any non-empty sentence).
  test::write_file(dir + "/examples.jsonl", "{\"question\": \"Once upon a time there was a king.\"}\nThe end came at dawn.\n");
  d = run_cli("lora describe " + dir + "/story -m " + base + " --examples " + dir + "/examples.jsonl --n 2");
  ASSERT_EQ(d.code, 0) << d.err;
  EXPECT_FALSE(test::read_file(dir + "/story/description.txt").empty());

  const std::string gsm = test::read_file(test::shared_dir() + "/data/eval/gsm8k/test.jsonl").substr(0, 20000);
  test::write_file(dir + "/math.txt", gsm);
  test::write_file(dir + "/novel.txt", test::read_file(test::shared_dir() + "/data/eval/prose/frankenstein.txt").substr(0, 20000));
  auto e = run_cli("lora eval -m " + base + " --lora math=" + dir + "/math --lora story=" + dir + "/story --task math=" + dir +
                   "/math.txt --task novel=" + dir + "/novel.txt --windows 2 --window-tokens 64 --json --report " + dir +
                   "/report.md");
  ASSERT_EQ(e.code, 0) << e.err;
  json j = json::parse(e.out);
  for (const char* route : {"base", "oracle", "uniform", "arrow", "global", "glider"}) ASSERT_TRUE(j["routes"].contains(route)) << route;
  EXPECT_TRUE(j["routes"]["oracle"].contains("math"));
  EXPECT_FALSE(j["routes"]["oracle"].contains("novel"));  // held out: no adapter of its own
  EXPECT_EQ(j["routes"]["base"]["math"]["tokens"], 2 * 63);
  EXPECT_NE(j["routes"]["base"]["math"]["loss"], j["routes"]["oracle"]["math"]["loss"]);
  const double own = j["routes"]["global"]["math"]["prior_top1_is_own"].get<double>();
  EXPECT_GE(own, 0.0);
  EXPECT_LE(own, 1.0);
  EXPECT_NE(test::read_file(dir + "/report.md").find("| glider |"), std::string::npos);

  auto bad = run_cli("lora eval -m " + base + " --lora math=" + dir + "/math --task math=" + dir + "/missing.txt");
  EXPECT_NE(bad.code, 0);
  EXPECT_NE(bad.err.find("missing.txt"), std::string::npos) << bad.err;
  bad = run_cli("lora describe " + dir + "/math -m " + base);
  EXPECT_NE(bad.code, 0);
  EXPECT_NE(bad.err.find("--text or --examples"), std::string::npos) << bad.err;
  ASSERT_EQ(run_cli("lora init -m " + base + " -o " + dir + "/plain --rank 2").code, 0);
  bad = run_cli("lora eval -m " + base + " --lora math=" + dir + "/math --lora " + dir + "/plain --task math=" + dir +
                "/math.txt --routes glider");
  EXPECT_NE(bad.code, 0);
  EXPECT_NE(bad.err.find("no description"), std::string::npos) << bad.err;
}

// eval with the global router: every document gets its own prior (the records name the adapter
// it ranks first), and with top-1 a document then scores exactly as under that adapter alone.
TEST(LoraCli, EvalGivesEachDocumentItsOwnPrior) {
  const std::string dir = test::temp_dir();
  const std::string base = "models/default";
  const std::vector<std::pair<std::string, std::string>> lib = {{"math", "Arithmetic: numbers added and multiplied."},
                                                                {"story", "Stories of kings, castles and dragons."}};
  std::string flags;
  for (const auto& [name, text] : lib) {
    ASSERT_EQ(run_cli("lora init -m " + base + " -o " + dir + "/" + name + " --rank 4 --random-b --seed " + std::to_string(name[0])).code, 0);
    ASSERT_EQ(run_cli("lora describe " + dir + "/" + name + " -m " + base + " --text '" + text + "'").code, 0);
    flags += " --lora " + name + "=" + dir + "/" + name;
  }
  test::write_file(dir + "/toy.jsonl",
                   "{\"query\": \"Question: what is 12 plus 30 times 2?\", \"choices\": [\" 72\", \" 84\"], \"gold\": 0}\n"
                   "{\"query\": \"Question: who lived in the castle with the dragon?\", \"choices\": [\" the king\", \" a cat\"], \"gold\": 0}\n"
                   "{\"query\": \"Question: what is 7 times 8?\", \"choices\": [\" 56\", \" 54\"], \"gold\": 0}\n");
  auto records = [&](const std::string& route) {
    auto r = run_cli("eval -m " + base + flags + " --lora-route " + route + " --lora-top-k 1 --task-file toy=" + dir +
                     "/toy.jsonl --tasks '' -q --json --records " + dir + "/rec.jsonl");
    EXPECT_EQ(r.code, 0) << r.err;
    std::vector<json> out;
    std::istringstream in(test::read_file(dir + "/rec.jsonl"));
    for (std::string line; std::getline(in, line);) out.push_back(json::parse(line));
    return out;
  };
  const std::vector<json> global = records("global");
  ASSERT_EQ(global.size(), 3u);
  std::map<std::string, std::vector<json>> alone;
  for (const auto& [name, text] : lib) alone[name] = records(name);
  for (size_t d = 0; d < global.size(); ++d) {
    const std::string route = global[d]["route"];
    ASSERT_EQ(route.rfind("prior:", 0), 0u) << route;
    const std::string top = route.substr(6);
    ASSERT_TRUE(alone.count(top)) << route;
    const auto got = global[d]["loglikelihoods"].get<std::vector<double>>();
    const auto want = alone[top][d]["loglikelihoods"].get<std::vector<double>>();
    ASSERT_EQ(got.size(), want.size());
    for (size_t c = 0; c < got.size(); ++c) EXPECT_NEAR(got[c], want[c], 1e-4 * std::abs(want[c])) << d << "/" << c;
  }
  // The two adapters score differently (else the equality above proves nothing).
  EXPECT_NE(alone["math"][0]["loglikelihoods"], alone["story"][0]["loglikelihoods"]);
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
