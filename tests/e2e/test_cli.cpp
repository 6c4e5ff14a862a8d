// The moeforge CLI end to end: every command on real files, and bad input.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "test_util.h"

namespace mf {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using test::run_cli;

std::string stories(const std::string& f) { return test::shared_dir() + "/models/stories260K/" + f; }
const std::string kTiny = "tests/golden/data/models/llama-gqa4-untied";

// A one-line error naming `needle`, exit code 1, nothing on stdout.
void expect_clean_failure(const std::string& args, const std::string& needle) {
  auto r = run_cli(args);
  EXPECT_EQ(r.code, 1) << args << "\n" << r.err;
  EXPECT_EQ(r.out, "") << args;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << "stderr: " << r.err;
  EXPECT_EQ(r.err.find("terminate"), std::string::npos);
}

TEST(Cli, GenerateGreedyMatchesLlamaCpp) {
  json golden = json::parse(test::read_file("tests/golden/data/llamacpp/stories260K.json"));
  auto& c = golden["cases"][0];
  auto r = run_cli("generate -m " + stories("stories260K.gguf") + " -p '" + c["prompt"].get<std::string>() + "' -n " +
                   std::to_string(c["n"].get<int>()) + " --temp 0");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, c["continuation"].get<std::string>() + "\n");
}

TEST(Cli, GenerateSamplingIsSeeded) {
  std::string args = "generate -m " + stories("stories260K.bin") + " -p 'The dog' -n 20 --temp 0.9 --top-k 20 --top-p 0.9 --json";
  auto a = run_cli(args + " --seed 1"), b = run_cli(args + " --seed 1");
  ASSERT_EQ(a.code, 0) << a.err;
  json j = json::parse(a.out), k = json::parse(b.out);
  EXPECT_EQ(j["tokens"], k["tokens"]);
  EXPECT_EQ(j["text"], k["text"]);
  auto c = run_cli(args + " --seed 2");
  EXPECT_NE(json::parse(c.out)["tokens"], j["tokens"]);
  EXPECT_GT(j["completion_tokens"].get<int>(), 0);
  EXPECT_GT(j["prompt_tokens"].get<int>(), 1);  // BOS + prompt
}

TEST(Cli, PerplexityJson) {
  auto r = run_cli("perplexity -m " + kTiny + " -f " + test::shared_dir() + "/models/tiny-llama-a/f1500.txt --json --ctx 100");
  ASSERT_EQ(r.code, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["tokens"], 585);
  EXPECT_EQ(j["windows"], 6);
  EXPECT_EQ(j["scored"], 585 - 6);
  EXPECT_GT(j["ppl"].get<double>(), 1.0);
}

TEST(Cli, BenchJson) {
  auto r = run_cli("bench -m " + stories("stories260K.gguf") + " -p 16 -n 8 -r 2 -t 2 --json");
  ASSERT_EQ(r.code, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_GT(j["prefill_tps"].get<double>(), 0);
  EXPECT_GT(j["decode_tps"].get<double>(), 0);
  EXPECT_EQ(j["threads"], 2);
  EXPECT_EQ(j["decode_tps_all"].size(), 2u);
}

TEST(Cli, InspectJson) {
  auto r = run_cli("inspect " + stories("stories260K.gguf") + " --json");
  ASSERT_EQ(r.code, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["architecture"], "llama");
  EXPECT_EQ(j["n_layer"], 5);
  EXPECT_EQ(j["n_head_kv"], 4);
  EXPECT_EQ(j["n_vocab"], 512);
  EXPECT_EQ(j["tokenizer"]["model"], "llama");
}

TEST(Cli, ConvertEveryInputFormatGivesTheSameGreedyText) {
  std::string dir = test::temp_dir();
  std::string want = run_cli("generate -m " + stories("stories260K.gguf") + " -p 'Once upon a time' -n 32 --temp 0").out;
  for (std::string in : {stories("stories260K.bin"), stories(""), stories("stories260K.gguf")}) {
    auto c = run_cli("convert " + in + " " + dir + "/out.gguf --type f32");
    ASSERT_EQ(c.code, 0) << in << ": " << c.err;
    auto g = run_cli("generate -m " + dir + "/out.gguf -p 'Once upon a time' -n 32 --temp 0");
    EXPECT_EQ(g.out, want) << in;
  }
  for (std::string type : {"f16", "bf16", "q8_0", "q4_0"}) {
    auto c = run_cli("convert " + kTiny + " " + dir + "/" + type + ".gguf --type " + type);
    ASSERT_EQ(c.code, 0) << c.err;
    auto i = run_cli("inspect " + dir + "/" + type + ".gguf --json");
    ASSERT_EQ(i.code, 0) << i.err;
    EXPECT_TRUE(json::parse(i.out)["matrix_params_by_dtype"].contains(type)) << i.out;
  }
  expect_clean_failure("convert " + kTiny + " " + dir + "/x.gguf --type q5_k", "--type q5_k");
  EXPECT_FALSE(fs::exists(dir + "/x.gguf"));
}

TEST(Cli, HelpForEveryCommand) {
  for (std::string cmd : {"generate", "perplexity", "bench", "inspect", "convert"}) {
    auto r = run_cli(cmd + " --help");
    EXPECT_EQ(r.code, 0) << cmd;
    EXPECT_NE(r.out.find("--"), std::string::npos) << cmd;
  }
  EXPECT_EQ(run_cli("").code, 2);
  EXPECT_EQ(run_cli("generate --bogus").code, 2);
}

// Copies a fixture directory so a test can damage it.
std::string copy_fixture(const std::string& src) {
  std::string dir = test::temp_dir() + "/m";
  fs::copy(src, dir, fs::copy_options::recursive);
  return dir;
}

TEST(CliBadInput, TruncatedAndCorruptedFiles) {
  std::string dir = test::temp_dir();
  std::string gguf = test::read_file(stories("stories260K.gguf"));
  test::write_file(dir + "/trunc.gguf", gguf.substr(0, gguf.size() / 2));
  expect_clean_failure("inspect " + dir + "/trunc.gguf", "trunc.gguf: truncated GGUF file");
  std::string bad = gguf;
  bad[5] = 7;  // version
  test::write_file(dir + "/bad.gguf", bad);
  expect_clean_failure("generate -m " + dir + "/bad.gguf -p hi", "bad.gguf: unsupported GGUF version");

  std::string m = copy_fixture(kTiny);
  std::string st = test::read_file(m + "/model.safetensors");
  test::write_file(m + "/model.safetensors", st.substr(0, st.size() - 100));
  expect_clean_failure("inspect " + m, "model.safetensors: tensor");
  st[8] = '!';  // first byte of the JSON header
  test::write_file(m + "/model.safetensors", st);
  expect_clean_failure("inspect " + m, "model.safetensors: corrupted safetensors header");

  std::string bin = test::read_file(stories("stories260K.bin"));
  test::write_file(dir + "/s.bin", bin.substr(0, 5000));
  expect_clean_failure("inspect " + dir + "/s.bin", "s.bin: truncated llama2.c checkpoint");
}

TEST(CliBadInput, WrongShapeUnknownArchitectureMissingTokenizer) {
  std::string m = copy_fixture(kTiny);
  std::string cfg = test::read_file(m + "/config.json");
  auto edited = [&](const std::string& from, const std::string& to) {
    std::string c = cfg;
    c.replace(c.find(from), from.size(), to);
    test::write_file(m + "/config.json", c);
  };
  edited("\"intermediate_size\": 96", "\"intermediate_size\": 97");
  expect_clean_failure("inspect " + m, "has shape [96, 64], expected [97, 64]");
  edited("\"model_type\": \"llama\"", "\"model_type\": \"gpt_bigcode\"");
  expect_clean_failure("inspect " + m, "unknown architecture 'gpt_bigcode'");
  test::write_file(m + "/config.json", cfg);
  fs::remove(m + "/tokenizer.json");
  expect_clean_failure("generate -m " + m + " -p hi", "no tokenizer found");
  expect_clean_failure("perplexity -m " + kTiny + " -f /nonexistent.txt", "/nonexistent.txt: cannot open");
  test::write_file(m + "/empty.txt", "");
  expect_clean_failure("perplexity -m " + kTiny + " -f " + m + "/empty.txt", "empty");
  test::write_file(m + "/latin1.txt", "caf\xe9 au lait");
  expect_clean_failure("perplexity -m " + kTiny + " -f " + m + "/latin1.txt", "not valid UTF-8");
  expect_clean_failure("inspect /nonexistent/model", "no such file");
}

}  // namespace
}  // namespace mf
