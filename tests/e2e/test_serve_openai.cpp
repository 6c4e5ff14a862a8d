// A real OpenAI client: the official `openai` npm package, installed from the npm registry by
// tests/e2e/serve_openai_client.sh, talks to the real server (chat, streamed chat, completion,
// errors). Skipped when node/npm are missing or the registry cannot be reached.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>

#include "test_serve_util.h"
#include "test_util.h"

namespace mf {
namespace {

TEST(ServeOpenAIClient, ChatAndStreamWithTheOfficialNpmPackage) {
  test::ServeProcess s("--api-key sk-moeforge-test");
  ASSERT_TRUE(s.ok()) << s.log();
  // Keep the installed package beside the binary's build folder between runs.
  const char* bin = std::getenv("MOEFORGE_BIN");
  const std::string npm_dir = bin ? (std::filesystem::path(bin).parent_path().parent_path() / "openai-npm").string()
                                  : test::temp_dir() + "/openai-npm";
  const std::string out = test::temp_dir() + "/out";
  const std::string cmd = "bash tests/e2e/serve_openai_client.sh " + std::to_string(s.port()) + " sk-moeforge-test " + npm_dir +
                          " >" + out + " 2>&1";
  const int status = std::system(cmd.c_str());
  const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
  const std::string log = test::read_file(out);
  if (code == 77) GTEST_SKIP() << log;
  EXPECT_EQ(code, 0) << log << "\nserver log:\n" << s.log();
  std::printf("%s", log.c_str());
}

}  // namespace
}  // namespace mf
