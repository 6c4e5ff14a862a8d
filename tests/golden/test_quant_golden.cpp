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

// SHA-256 (FIPS 180-4) of a byte buffer as lowercase hex: the goldens record gguf-py's
// dequantised float32 bytes by their sha256.
std::string sha256_hex(const uint8_t* data, size_t len) {
  static const uint32_t k[64] = {
      0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
      0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
      0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
      0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
      0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
      0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
      0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
      0xc67178f2};
  uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  auto rotr = [](uint32_t x, int n) { return (x >> n) | (x << (32 - n)); };
  auto block = [&](const uint8_t* p) {
    uint32_t w[64];
    for (int i = 0; i < 16; ++i) w[i] = uint32_t(p[4 * i]) << 24 | uint32_t(p[4 * i + 1]) << 16 | uint32_t(p[4 * i + 2]) << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; ++i) {
      const uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
      const uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int i = 0; i < 64; ++i) {
      const uint32_t t1 = hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + k[i] + w[i];
      const uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
      hh = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e, h[5] += f, h[6] += g, h[7] += hh;
  };
  size_t i = 0;
  for (; i + 64 <= len; i += 64) block(data + i);
  uint8_t tail[128] = {};
  const size_t rest = len - i;
  std::memcpy(tail, data + i, rest);
  tail[rest] = 0x80;
  const size_t tail_len = rest + 9 <= 64 ? 64 : 128;
  const uint64_t bits = uint64_t(len) * 8;
  for (int j = 0; j < 8; ++j) tail[tail_len - 1 - j] = uint8_t(bits >> (8 * j));
  for (size_t j = 0; j < tail_len; j += 64) block(tail + j);
  std::string out;
  char buf[9];
  for (uint32_t v : h) std::snprintf(buf, sizeof buf, "%08x", v), out += buf;
  return out;
}

TEST(QuantGolden, Sha256KnownAnswers) {
  EXPECT_EQ(sha256_hex(reinterpret_cast<const uint8_t*>("abc"), 3),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const std::string m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  EXPECT_EQ(sha256_hex(reinterpret_cast<const uint8_t*>(m.data()), m.size()),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

// The real model files: in the moeforge cache ($MOEFORGE_HOME or ~/.cache/moeforge, where
// `moeforge pull` puts them) or /tmp/wheels; empty if absent.
std::string find_model_file(const std::string& cache_name, const std::string& file) {
  namespace fs = std::filesystem;
  std::vector<fs::path> dirs;
  if (const char* h = std::getenv("MOEFORGE_HOME"); h && *h) dirs.push_back(fs::path(h) / "models" / cache_name);
  if (const char* home = std::getenv("HOME"); home && *home)
    dirs.push_back(fs::path(home) / ".cache" / "moeforge" / "models" / cache_name);
  dirs.push_back("/tmp/wheels");
  for (const auto& d : dirs)
    if (fs::exists(d / file)) return (d / file).string();
  return "";
}

// Every tensor of a real GGUF file dequantises (ref:: and ops::) to gguf-py's float32 bytes.
void check_gguf_file(const std::string& cache_name, const std::string& file) {
  const std::string path = find_model_file(cache_name, file);
  if (path.empty())
    GTEST_SKIP() << file << " not found in $MOEFORGE_HOME/models/" << cache_name << ", ~/.cache/moeforge/models/"
                 << cache_name << " or /tmp/wheels (moeforge pull " << cache_name << " fetches it)";
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
    EXPECT_EQ(sha256_hex(reinterpret_cast<const uint8_t*>(a.data()), size_t(n) * 4), sha) << "ref " << t.name << " " << w[0];
    EXPECT_EQ(std::memcmp(a.data(), b.data(), size_t(n) * 4), 0) << "ops differs from ref: " << t.name << " " << w[0];
  }
}

TEST(QuantGolden, SmolLM2Q4_1TensorsEqualGgufPy) {
  check_gguf_file("smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf");
}

TEST(QuantGolden, Gemma3Q4_K_MTensorsEqualGgufPy) { check_gguf_file("gemma3-270m", "gemma-3-270m-q4_k_m.gguf"); }

}  // namespace
}  // namespace mf
