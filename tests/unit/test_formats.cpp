// safetensors and GGUF: round trips and every kind of bad file we know of.
#include <gtest/gtest.h>

#include <cstring>

#include "core/error.h"
#include "core/half.h"
#include "formats/gguf.h"
#include "formats/safetensors.h"
#include "test_util.h"

namespace mf {
namespace {

std::string st_file(const std::string& header, size_t data_bytes) {
  uint64_t len = header.size();
  std::string s(reinterpret_cast<const char*>(&len), 8);
  return s + header + std::string(data_bytes, '\0');
}

void expect_error(const std::function<void()>& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "expected an error containing '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(Safetensors, RoundTripThroughWriter) {
  std::vector<float> a = test::random_floats(6, 1);
  std::vector<uint16_t> b = {f32_to_bf16(1.5f), f32_to_bf16(-2.0f)};
  std::string path = test::temp_dir() + "/x.safetensors";
  write_safetensors(path, {{"a", make_view(DType::F32, {2, 3}, a.data())}, {"b", make_view(DType::BF16, {2}, b.data())}});
  auto ck = SafetensorsCheckpoint::open(path);
  ASSERT_EQ(ck.tensors().size(), 2u);
  const TensorView& va = ck.find("a")->view;
  EXPECT_EQ(va.shape_str(), "[2, 3]");
  EXPECT_EQ(std::memcmp(va.data, a.data(), 24), 0);
  EXPECT_EQ(ck.find("b")->view.dtype, DType::BF16);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
}

TEST(Safetensors, RejectsBadFiles) {
  auto parse = [](const std::string& bytes) {
    return [bytes] { parse_safetensors(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "m.safetensors"); };
  };
  expect_error(parse("abc"), "truncated");
  expect_error(parse(st_file("{", 0)), "corrupted safetensors header");
  std::string hdr = R"({"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}})";
  expect_error(parse(st_file(hdr, 8)), "outside the file");  // truncated data
  std::string full = st_file(hdr, 16);
  expect_error(parse(full.substr(0, 12)), "truncated");  // truncated header
  expect_error(parse(st_file(R"({"w":{"dtype":"F32","shape":[3,2],"data_offsets":[0,16]}})", 16)), "needs 24");
  expect_error(parse(st_file(R"({"w":{"dtype":"Q9","shape":[2],"data_offsets":[0,8]}})", 8)), "unsupported dtype");
  expect_error(parse(st_file(R"({"w":{"dtype":"F32","shape":"x","data_offsets":[0,8]}})", 8)), "malformed");
  expect_error(parse(st_file(R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8)), "shape");
  expect_error(parse(st_file(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", 8)), "outside");
  EXPECT_NO_THROW(parse(full)());
}

TEST(Safetensors, ShardedIndexMustListPresentTensors) {
  std::string dir = test::temp_dir();
  float x[2] = {1, 2};
  write_safetensors(dir + "/a.safetensors", {{"x", make_view(DType::F32, {2}, x)}});
  test::write_file(dir + "/model.safetensors.index.json", R"({"weight_map":{"x":"a.safetensors","y":"a.safetensors"}})");
  expect_error([&] { SafetensorsCheckpoint::open(dir); }, "'y' listed in the index is missing");
  test::write_file(dir + "/model.safetensors.index.json", R"({"weight_map":{"x":"b.safetensors"}})");
  expect_error([&] { SafetensorsCheckpoint::open(dir); }, "b.safetensors: cannot open");
}

std::string make_gguf(const std::string& dir) {
  static std::vector<float> w = test::random_floats(64 * 3, 7);
  GgufWriter g;
  g.set_string("general.architecture", "llama");
  g.set_u32("llama.block_count", 2);
  g.set_f32("llama.rope.freq_base", 500000.0f);
  g.set_bool("flag", true);
  g.set_array("tokens", GgufType::STRING, nlohmann::json::array({"a", "bc", ""}));
  g.set_array("scores", GgufType::F32, nlohmann::json::array({0.5, -1.0, 2.0}));
  g.add_tensor("w", make_view(DType::F32, {3, 64}, w.data()));
  g.add_tensor("v", make_view(DType::F32, {5}, w.data()));
  std::string path = dir + "/x.gguf";
  g.write(path);
  return path;
}

TEST(Gguf, RoundTripThroughWriter) {
  std::string path = make_gguf(test::temp_dir());
  auto g = GgufFile::open(path);
  EXPECT_EQ(g->version(), 3u);
  EXPECT_EQ(g->get_string("general.architecture"), "llama");
  EXPECT_EQ(g->get_int("llama.block_count"), 2);
  EXPECT_FLOAT_EQ(float(g->get_float("llama.rope.freq_base", 0)), 500000.0f);
  EXPECT_TRUE(g->get_bool("flag", false));
  EXPECT_EQ(g->get_array("tokens")[1], "bc");
  EXPECT_EQ(g->find("scores")->elem_type, GgufType::F32);
  const GgufTensorInfo* w = g->find_tensor("w");
  ASSERT_TRUE(w);
  EXPECT_EQ(w->view.shape_str(), "[3, 64]");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(w->view.data) % 32, 0u);
  EXPECT_EQ(g->find_tensor("v")->view.numel(), 5);
}

TEST(Gguf, EveryTruncationIsACleanError) {
  std::string bytes = test::read_file(make_gguf(test::temp_dir()));
  // The file ends with 12 bytes of alignment padding after tensor 'v' (20 bytes of data);
  // any shorter prefix cuts real content.
  for (size_t n = 0; n + 12 < bytes.size(); n += 3) {
    try {
      GgufFile::parse(reinterpret_cast<const uint8_t*>(bytes.data()), n, "t.gguf");
      ADD_FAILURE() << "prefix of " << n << " bytes parsed";
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()).rfind("t.gguf: ", 0), 0u) << e.what();
    }
  }
}

TEST(Gguf, RejectsCorruptedHeaders) {
  std::string bytes = test::read_file(make_gguf(test::temp_dir()));
  auto parse = [](std::string b) {
    return [b] { GgufFile::parse(reinterpret_cast<const uint8_t*>(b.data()), b.size(), "t.gguf"); };
  };
  std::string bad = bytes;
  bad[0] = 'X';
  expect_error(parse(bad), "bad magic");
  bad = bytes;
  bad[4] = 9;
  expect_error(parse(bad), "unsupported GGUF version");
  bad = bytes;
  std::memset(&bad[16], 0xff, 8);  // metadata count
  expect_error(parse(bad), "corrupted GGUF header");
}

}  // namespace
}  // namespace mf
