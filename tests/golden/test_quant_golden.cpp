// (De)quantisation against gguf-py (scripts/make_quant_goldens.py; gguf-py's version is in
// tests/golden/data/quant_index.json): ref:: and ops::dequantize_row equal gguf-py's float32
// values bit for bit on random blocks of every type, ref::quantize_row gives gguf-py's bytes
// where gguf-py quantises; and, when the real GGUF files are present (skipped otherwise),
// every tensor of them dequantises to gguf-py's values (sha256 of the float32 bytes,
// tests/golden/data/quant_gguf_sha256.json); those read ~1 GB and take a few seconds.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "formats/gguf.h"
#include "ops/ops.h"
#include "test_util.h"

namespace mf {
namespace {

DType type_named(const std::string& s) {
  for (DType t : {DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q2_K, DType::Q3_K,
                  DType::Q4_K, DType::Q5_K, DType::Q6_K})
    if (dtype_name(t) == s) return t;
  ADD_FAILURE() << "unknown type " << s;
  return DType::F32;
}

struct Goldens {
  nlohmann::json index;
  std::string blob;
};

const Goldens& goldens() {
  static const Goldens g = [] {
    Goldens g;
    g.index = nlohmann::json::parse(test::read_file("tests/golden/data/quant_index.json"));
    g.blob = test::read_file("tests/golden/data/quant_blocks.bin");
    return g;
  }();
  return g;
}

TEST(QuantGolden, DequantizeEqualsGgufPy) {
  const Goldens& g = goldens();
  int checked = 0;
  for (const auto& e : g.index["entries"]) {
    if (e["kind"] != "dequant") continue;
    const DType t = type_named(e["type"]);
    const int64_t n = e["n"];
    const char* blocks = g.blob.data() + size_t(e["blocks"]);
    ASSERT_EQ(size_t(e["bytes"]), row_bytes(t, n));
    std::vector<float> want(static_cast<size_t>(n)), a(static_cast<size_t>(n)), b(static_cast<size_t>(n));
    std::memcpy(want.data(), g.blob.data() + size_t(e["floats"]), size_t(n) * 4);
    ref::dequantize_row(t, blocks, a.data(), n);
    ops::dequantize_row(t, blocks, b.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      uint32_t wa, aa, ba;
      std::memcpy(&wa, &want[size_t(i)], 4), std::memcpy(&aa, &a[size_t(i)], 4), std::memcpy(&ba, &b[size_t(i)], 4);
      ASSERT_EQ(aa, wa) << "ref " << e["type"] << " i=" << i << " got " << a[size_t(i)] << " want " << want[size_t(i)];
      ASSERT_EQ(ba, wa) << "ops " << e["type"] << " i=" << i << " got " << b[size_t(i)] << " want " << want[size_t(i)];
    }
    ++checked;
  }
  EXPECT_EQ(checked, 10);
}

TEST(QuantGolden, QuantizeEqualsGgufPy) {
  const Goldens& g = goldens();
  int checked = 0;
  for (const auto& e : g.index["entries"]) {
    if (e["kind"] != "quant") continue;
    const DType t = type_named(e["type"]);
    const int64_t n = e["n"];
    std::vector<float> x(static_cast<size_t>(n));
    std::memcpy(x.data(), g.blob.data() + size_t(e["floats"]), size_t(n) * 4);
    std::vector<uint8_t> got(row_bytes(t, n));
    ASSERT_EQ(got.size(), size_t(e["bytes"]));
    ref::quantize_row(t, x.data(), got.data(), n);
    EXPECT_EQ(std::memcmp(got.data(), g.blob.data() + size_t(e["blocks"]), got.size()), 0) << e["type"];
    ++checked;
  }
  EXPECT_GE(checked, 5);
}


// Every tensor of a real GGUF file dequantises (ref:: and ops::) to gguf-py's float32 bytes.
void check_gguf_file(const std::string& cache_name, const std::string& file) {
  const std::string path = test::pulled_model_file(cache_name, file);
  if (path.empty())
    GTEST_SKIP() << file << " not found in $MOEFORGE_HOME/models/" << cache_name << " or ~/.cache/moeforge/models/"
                 << cache_name << " (moeforge pull " << cache_name << " fetches it)";
  const auto golden = nlohmann::json::parse(test::read_file("tests/golden/data/quant_gguf_sha256.json"));
  const auto& want = golden["files"][file];
  ASSERT_FALSE(want.empty());
  const auto gguf = GgufFile::open(path);
  ASSERT_EQ(gguf->tensors().size(), want.size());
  std::vector<float> a, b;
  for (const auto& t : gguf->tensors()) {
    ASSERT_TRUE(want.contains(t.name)) << t.name;
    const auto& w = want[t.name];
    const int64_t n = t.view.numel();
    ASSERT_EQ(n, int64_t(w[1])) << t.name;
    a.resize(size_t(n)), b.resize(size_t(n));
    ref::dequantize_row(t.view.dtype, t.view.data, a.data(), n);  // rows are contiguous blocks
    ops::dequantize_row(t.view.dtype, t.view.data, b.data(), n);
    const std::string sha = w[2];
    EXPECT_EQ(test::sha256_hex(reinterpret_cast<const uint8_t*>(a.data()), size_t(n) * 4), sha) << "ref " << t.name << " " << w[0];
    EXPECT_EQ(std::memcmp(a.data(), b.data(), size_t(n) * 4), 0) << "ops differs from ref: " << t.name << " " << w[0];
  }
}

TEST(QuantGolden, SmolLM2Q4_1TensorsEqualGgufPy) {
  check_gguf_file("smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf");
}

TEST(QuantGolden, Gemma3Q4_K_MTensorsEqualGgufPy) { check_gguf_file("gemma3-270m", "gemma-3-270m-q4_k_m.gguf"); }

}  // namespace
}  // namespace mf
