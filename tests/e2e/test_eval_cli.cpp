// moeforge eval, eval-report and eval-moe --tasks end to end on the committed default model:
// records, --json and the report; bad task input gets one clear error and no report.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "eval/tasks.h"
#include "test_util.h"

namespace mf {
namespace {

namespace fs = std::filesystem;

void expect_error(const std::string& args, const std::string& needle) {
  auto r = test::run_cli(args);
  EXPECT_EQ(r.code, 1) << args << "\n" << r.err;
  EXPECT_EQ(r.out, "") << args;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
}

const char* kToy =
    "{\"query\": \"Question: Which one is a colour?\", \"choices\": [\"blue\", \"table\"], \"gold\": 0}\n"
    "{\"query\": \"Question: What do cats say?\", \"choices\": [\"woof\", \"meow\", \"moo\"], \"gold\": 1}\n"
    "{\"query\": \"Question: Two plus two?\", \"choices\": [\"four\", \"five\"], \"gold\": 0}\n";

TEST(EvalCli, RecordsJsonAndReport) {
  const std::string dir = test::temp_dir();
  test::write_file(dir + "/toy.jsonl", kToy);
  auto r = test::run_cli("eval -m models/default --tasks arc_easy,mmlu_anatomy,mmlu_continuation_anatomy,gsm8k,wikitext --limit 3 --limit toy=2 --max-gen-tokens 8 "
                         "--task-file toy=" + dir + "/toy.jsonl --records " + dir + "/rec.jsonl --report " + dir +
                         "/report --json -q");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  for (const char* t : {"arc_easy", "mmlu_anatomy", "mmlu_continuation_anatomy", "gsm8k", "wikitext", "toy"}) ASSERT_TRUE(j["tasks"].contains(t)) << t;
  EXPECT_EQ(j["tasks"]["arc_easy"]["n"], 3);
  EXPECT_EQ(j["tasks"]["toy"]["n"], 2);  // its own --limit
  EXPECT_EQ(j["tasks"]["mmlu_anatomy"]["groups"]["stem"]["value"], j["tasks"]["mmlu_anatomy"]["metrics"]["acc"]["value"]);
  const auto& cont = j["tasks"]["mmlu_continuation_anatomy"];
  EXPECT_EQ(cont["n"], 3);
  EXPECT_EQ(cont["groups"]["stem"]["value"], cont["metrics"]["acc"]["value"]);
  const double acc = j["tasks"]["toy"]["metrics"]["acc"]["value"];
  EXPECT_GE(acc, 0.0);
  EXPECT_LE(acc, 1.0);
  EXPECT_GT(j["tasks"]["wikitext"]["metrics"]["bits_per_byte"]["value"].get<double>(), 0.0);
  EXPECT_EQ(j["tasks"]["gsm8k"]["routes"]["dense"], 3);
  // One record per document, each with its choices' log-likelihoods and route.
  const std::string rec = test::read_file(dir + "/rec.jsonl");
  EXPECT_EQ(std::count(rec.begin(), rec.end(), '\n'), 3 + 3 + 3 + 3 + 3 + 2);
  const auto first = nlohmann::json::parse(rec.substr(0, rec.find('\n')));
  EXPECT_EQ(first["loglikelihoods"].size(), 4u);
  for (size_t at = 0; at < rec.size(); at = rec.find('\n', at) + 1) {  // every task's records, WikiText's too
    const auto line = nlohmann::json::parse(rec.substr(at, rec.find('\n', at) - at));
    EXPECT_EQ(line["route"], "dense") << line["id"];
  }
  for (const char* f : {"report.md", "report.html"}) EXPECT_TRUE(fs::exists(dir + "/report/" + f)) << f;
  const std::string page = test::read_file(dir + "/report/report.html");
  for (const char* plot : {"Accuracy per task", "accuracy against FFN density"}) EXPECT_NE(page.find(plot), std::string::npos) << plot;
  EXPECT_EQ(page.find("against decode speed"), std::string::npos) << "no speed was measured (no --bench)";
  // eval-report joins several runs.
  test::write_file(dir + "/a.json", r.out);
  auto rep = test::run_cli("eval-report -o " + dir + "/joined " + dir + "/a.json " + dir + "/a.json");
  EXPECT_EQ(rep.code, 0) << rep.err;
  EXPECT_TRUE(fs::exists(dir + "/joined/report.html"));
  expect_error("eval-report -o " + dir + "/bad " + dir + "/toy.jsonl", "not JSON");
  EXPECT_FALSE(fs::exists(dir + "/bad"));
}

// All of MMLU, one question per subject: 57 subjects, each in one of the four categories; a
// category's accuracy is over its questions, the macro average over subjects.
TEST(EvalCli, MmluGroupsAndMacroAverage) {
  auto r = test::run_cli("eval -m models/default --tasks mmlu --limit 1 --json -q");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto mmlu = nlohmann::json::parse(r.out)["tasks"]["mmlu"];
  ASSERT_EQ(mmlu["n"], 57);
  const std::set<std::string> categories = {"stem", "humanities", "social_sciences", "other"};
  double correct = 0;
  std::map<std::string, std::pair<double, int>> by_category;  // correct, questions
  for (const auto& [name, g] : mmlu["groups"].items()) {
    if (categories.contains(name) || name == "macro") continue;
    const double acc = g["value"];  // one question per subject: 0 or 1
    correct += acc;
    auto& [c, n] = by_category[mf::eval::mmlu_category(name)];
    c += acc, ++n;
  }
  EXPECT_NEAR(mmlu["metrics"]["acc"]["value"].get<double>(), correct / 57, 1e-12);
  // The macro average is the mean of the 57 subjects' accuracies (with one question each, also
  // the overall accuracy).
  EXPECT_NEAR(mmlu["groups"]["macro"]["value"].get<double>(), correct / 57, 1e-12);
  ASSERT_EQ(by_category.size(), 4u);
  int subjects = 0;
  for (const auto& [c, v] : by_category) subjects += v.second;
  EXPECT_EQ(subjects, 57);
  for (const auto& [c, v] : by_category) {
    ASSERT_TRUE(categories.contains(c)) << c;
    EXPECT_NEAR(mmlu["groups"][c]["value"].get<double>(), v.first / v.second, 1e-12) << c;
  }
}

TEST(EvalCli, BadTaskInputFailsBeforeAnyReport) {
  const std::string dir = test::temp_dir();
  const std::string report = " --report " + dir + "/report";
  test::write_file(dir + "/missing.jsonl", "{\"query\": \"Question: q\", \"choices\": [\"a\", \"b\"]}\n");
  test::write_file(dir + "/range.jsonl", "{\"query\": \"Question: q\", \"choices\": [\"a\", \"b\"], \"gold\": 5}\n");
  test::write_file(dir + "/empty.jsonl", "\n\n");
  test::write_file(dir + "/one.jsonl", "{\"query\": \"Question: q\", \"choices\": [\"a\", \"b\"], \"gold\": 0}\n");
  expect_error("eval -m models/default --tasks '' --task-file t=" + dir + "/missing.jsonl" + report, "missing field \"gold\"");
  expect_error("eval -m models/default --tasks '' --task-file t=" + dir + "/range.jsonl" + report, "gold index 5 is out of range");
  expect_error("eval -m models/default --tasks '' --task-file t=" + dir + "/empty.jsonl" + report, "empty");
  expect_error("eval -m models/default --tasks nosuchtask" + report, "unknown task 'nosuchtask'");
  expect_error("eval -m models/default --tasks mmlu_anatomy --shots 6" + report, "6 shots asked, but the few-shot pool of anatomy has only 5");
  expect_error("eval -m models/default --tasks '' --task-file t=" + dir + "/one.jsonl --shots 1" + report, "has only 0");
  expect_error("eval -m models/default --tasks '' --task-file t" + report, "expected NAME=FILE");
  expect_error("eval -m models/default --tasks arc_easy --limit piqa=2" + report, "no task named 'piqa'");
  expect_error("eval -m models/default --tasks arc_easy --limit x" + report, "expected N or TASK=N");
  expect_error("eval -m models/default --tasks arc_easy --limit 2 --domain code" + report, "--domain needs a .moe model");
  EXPECT_FALSE(fs::exists(dir + "/report"));
}

TEST(EvalMoeCli, TaskProtocolRowsAndReport) {
  const std::string dir = test::temp_dir();
  std::string domains;
  for (const char* d : {"code", "math", "prose", "reference"})
    domains += std::string(" --domain ") + d + "=tests/data/moe/" + d + ".txt";
  auto c = test::run_cli("calibrate -m models/default" + domains +
                         " --tokens-per-domain 2048 --sample-tokens 32 --micro-clusters 2 -o " + dir + "/stats.gguf");
  ASSERT_EQ(c.code, 0) << c.err;
  const std::string eval_moe = "eval-moe -m models/default -s " + dir + "/stats.gguf --tasks arc_easy --limit 4 "
                               "--densities 0.5 --methods neurons-routed,random --refit plain --bench-reps 1 -o " + dir + "/out";
  // Interrupted (its summary cannot be written), a run keeps the experts it built and the same
  // command resumes from them.
  fs::create_directories(dir + "/out/summary.md");
  ASSERT_EQ(test::run_cli(eval_moe).code, 1);
  EXPECT_TRUE(fs::exists(dir + "/out/checkpoint/neurons@0.5/expert-3.gguf"));
  EXPECT_TRUE(fs::exists(dir + "/out/checkpoint/random@0.5/expert-0.gguf"));
  const std::vector<std::string> records = {"runs/moe-routed_0.50.records.jsonl", "runs/random_0.50.records.jsonl"};
  std::vector<std::string> first;  // what the interrupted run's experts scored
  for (const std::string& f : records) first.push_back(test::read_file(dir + "/out/" + f));
  fs::remove(dir + "/out/summary.md");
  auto r = test::run_cli(eval_moe);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("resumed: 4 of 4 experts of neurons@0.50"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("resumed: 1 of 1 experts of random@0.50"), std::string::npos) << r.err;
  for (size_t i = 0; i < records.size(); ++i)  // the resumed experts score every document the same
    EXPECT_EQ(test::read_file(dir + "/out/" + records[i]), first[i]) << records[i];
  const auto s = nlohmann::json::parse(test::read_file(dir + "/out/summary.json"));
  std::vector<std::string> labels;
  for (const auto& row : s["rows"]) labels.push_back(row["label"]);
  EXPECT_EQ(labels, (std::vector<std::string>{"dense", "moe-routed@0.50", "expert:code@0.50", "expert:math@0.50",
                                              "expert:prose@0.50", "expert:reference@0.50", "random@0.50"}));
  EXPECT_DOUBLE_EQ(s["rows"][0]["delta_mc_mean"].get<double>(), 0.0);
  EXPECT_DOUBLE_EQ(s["rows"][0]["prefill_speedup"].get<double>(), 1.0);
  // Weights in memory: one expert at half the FFN holds less than dense; the routed MoE holds
  // all four experts, so more than one; random@0.5 keeps one expert's worth.
  const auto mem = [&](size_t i) { return s["rows"][i]["resident_weight_bytes"].get<double>(); };
  EXPECT_LT(mem(2), mem(0));
  EXPECT_GT(mem(1), mem(2) * 1.5);
  EXPECT_LT(mem(6), mem(0));
  for (const char* f : {"summary.md", "report.md", "report.html", "runs/dense.json", "runs/random_0.50.records.jsonl"})
    EXPECT_TRUE(fs::exists(dir + "/out/" + f)) << f;
  EXPECT_FALSE(fs::exists(dir + "/out/checkpoint")) << "the built experts are kept only until the run ends";
  const std::string page = test::read_file(dir + "/out/report.html");  // the three plots the issue asked for
  for (const char* plot : {"Accuracy per task", "accuracy against FFN density", "accuracy against decode speed"})
    EXPECT_NE(page.find(plot), std::string::npos) << plot;
  // Each row's difference to dense comes with its paired standard error; eval-compare gives the
  // same difference from the two rows' records, and refuses records over other documents.
  for (size_t i = 1; i < s["rows"].size(); ++i) EXPECT_TRUE(s["rows"][i].contains("delta_mc_mean_se")) << i;
  EXPECT_FALSE(s["rows"][0].contains("delta_mc_mean_se"));  // dense against itself
  auto cmp = test::run_cli("eval-compare " + dir + "/out/runs/random_0.50.records.jsonl " + dir + "/out/runs/dense.records.jsonl --json");
  ASSERT_EQ(cmp.code, 0) << cmp.err;
  const auto cj = nlohmann::json::parse(cmp.out);
  EXPECT_NEAR(cj["mean_diff"].get<double>(), s["rows"][6]["delta_mc_mean"].get<double>(), 1e-9);
  EXPECT_DOUBLE_EQ(cj["mean_se"].get<double>(), s["rows"][6]["delta_mc_mean_se"].get<double>());
  EXPECT_EQ(cj["tasks"][0]["documents"], 4);
  test::write_file(dir + "/other.jsonl", R"({"task":"arc_easy","id":"arc_easy/99","acc":1})" "\n");
  expect_error("eval-compare " + dir + "/out/runs/dense.records.jsonl " + dir + "/other.jsonl", "scores 4 multiple-choice documents");
  expect_error("eval-moe -m models/default -s " + dir + "/stats.gguf --tasks nosuchtask -o " + dir + "/bad",
               "unknown task 'nosuchtask'");
  // A .moe routes each document (records say where), or is forced with --domain.
  ASSERT_EQ(test::run_cli("build-moe -m models/default -s " + dir + "/stats.gguf --density 0.5 -o " + dir + "/m.moe").code, 0);
  auto e = test::run_cli("eval -m " + dir + "/m.moe --tasks arc_easy --limit 6 -q --json --records " + dir + "/rec.jsonl");
  ASSERT_EQ(e.code, 0) << e.err;
  const auto j = nlohmann::json::parse(e.out);
  int64_t routed = 0;
  for (const auto& [expert, n] : j["tasks"]["arc_easy"]["routes"].items()) {
    EXPECT_NE(expert.find('/'), std::string::npos) << expert;  // "domain/k"
    routed += n.get<int64_t>();
  }
  EXPECT_EQ(routed, 6);
  EXPECT_NE(test::read_file(dir + "/rec.jsonl").find("\"route\":\""), std::string::npos);
  auto f = test::run_cli("eval -m " + dir + "/m.moe --domain math --tasks arc_easy --limit 3 -q --json");
  ASSERT_EQ(f.code, 0) << f.err;
  EXPECT_EQ(nlohmann::json::parse(f.out)["tasks"]["arc_easy"]["routes"]["math/0"], 3);
  expect_error("eval -m " + dir + "/m.moe --domain nosuch --tasks arc_easy --limit 3", "unknown expert 'nosuch'");
}

// With no multiple-choice task (WikiText only) there is no accuracy to pair: the rows come
// without paired errors instead of failing.
TEST(EvalMoeCli, TaskProtocolWithoutMultipleChoice) {
  const std::string dir = test::temp_dir();
  auto c = test::run_cli("calibrate -m models/default --domain code=tests/data/moe/code.txt --domain "
                         "prose=tests/data/moe/prose.txt --tokens-per-domain 2048 --sample-tokens 32 --micro-clusters 2 -o " +
                         dir + "/stats.gguf");
  ASSERT_EQ(c.code, 0) << c.err;
  auto r = test::run_cli("eval-moe -m models/default -s " + dir + "/stats.gguf --tasks wikitext --limit 1 --densities 0.5 "
                         "--methods random --refit plain --bench-reps 1 -o " + dir + "/out");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto s = nlohmann::json::parse(test::read_file(dir + "/out/summary.json"));
  ASSERT_EQ(s["rows"].size(), 2u);  // dense, random@0.50
  for (const auto& row : s["rows"]) EXPECT_FALSE(row.contains("delta_mc_mean_se")) << row["label"];
  EXPECT_TRUE(fs::exists(dir + "/out/runs/random_0.50.json"));
}

}  // namespace
}  // namespace mf
