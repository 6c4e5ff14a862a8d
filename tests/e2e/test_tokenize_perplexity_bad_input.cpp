// Bad input to `tokenize` and to perplexity's llama.cpp protocol: one-line errors, exit code 1.
#include <gtest/gtest.h>

#include "test_util.h"

namespace mf {
namespace {

void expect_error(const std::string& args, const std::string& needle) {
  auto r = test::run_cli(args);
  EXPECT_EQ(r.code, 1) << args << "\n" << r.err;
  EXPECT_EQ(r.out, "") << args;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
}

TEST(TokenizeCli, BadInput) {
  const std::string dir = test::temp_dir();
  test::write_file(dir + "/empty.txt", "");
  test::write_file(dir + "/bad.txt", "\xff\xfe not UTF-8");
  test::write_file(dir + "/ok.txt", "text");
  expect_error("tokenize -m models/default", "give exactly one of --prompt and --file");
  expect_error("tokenize -m models/default -p x -f " + dir + "/ok.txt", "give exactly one of --prompt and --file");
  expect_error("tokenize -m models/default -f " + dir + "/empty.txt", "file is empty");
  expect_error("tokenize -m models/default -f " + dir + "/bad.txt", "not valid UTF-8");
  auto r = test::run_cli("tokenize -m models/default -f " + dir + "/ok.txt --json");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("\"n_tokens\""), std::string::npos);
}

TEST(PerplexityCli, LlamaCppProtocolNeedsAWholeWindow) {
  const std::string file = test::temp_dir() + "/short.txt";
  test::write_file(file, "short text");
  expect_error("perplexity -m models/default -f " + file + " --ctx 64 --llamacpp", "needs at least one whole window of 64");
}

}  // namespace
}  // namespace mf
