// GGUF files with broken quantised tensors: each is one line naming the file and the problem,
// exit code 1. Made from the fuzz seed that holds one tensor of every quantised type.
#include <gtest/gtest.h>

#include <cstring>

#include "test_util.h"

namespace mf {
namespace {

// The seed without the fuzz target's parser-selector byte.
std::string seed_gguf() { return test::read_file("tests/fuzz/seeds/gguf_quant_types").substr(1); }

// Offset of the tensor-info entry (just after its name) of `name`.
size_t after_name(const std::string& g, const std::string& name) {
  const size_t at = g.find(name);
  EXPECT_NE(at, std::string::npos);
  return at + name.size();
}

void expect_error(const std::string& bytes, const std::string& needle) {
  const std::string path = test::temp_dir() + "/bad.gguf";
  test::write_file(path, bytes);
  auto r = test::run_cli("inspect " + path);
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find(path), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
}

TEST(BadQuantFiles, KQuantRowNotWholeSuperBlocks) {
  std::string g = seed_gguf();
  const uint64_t ne0 = 320;  // q4_K rows must be multiples of 256
  std::memcpy(g.data() + after_name(g, "t_q4_k") + 4, &ne0, 8);
  expect_error(g, "tensor 't_q4_k' row of 320 is not a whole number of blocks");
}

TEST(BadQuantFiles, UnknownTensorType) {
  std::string g = seed_gguf();
  const uint32_t type = 99;
  std::memcpy(g.data() + after_name(g, "t_q6_k") + 4 + 2 * 8, &type, 4);  // after n_dims and 2 dims
  expect_error(g, "tensor 't_q6_k' has unsupported ggml type 99");
}

TEST(BadQuantFiles, TruncatedTensorData) {
  std::string g = seed_gguf();
  g.resize(g.size() - 100);
  expect_error(g, "t_q6_k");
}

}  // namespace
}  // namespace mf
