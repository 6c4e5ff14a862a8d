// `moeforge convert --type q4_K_M|q5_K_M|q6_K` writes the same tensor types and bytes as
// llama-quantize (no importance matrix) from the same f16 GGUF of the default model
// (tests/golden/data/llamacpp/quantize_default.json, made by scripts/make_quantize_goldens.sh).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "formats/gguf.h"
#include "test_util.h"

namespace mf {
namespace {

TEST(QuantizeGolden, PresetsEqualLlamaQuantize) {
  const auto golden = nlohmann::json::parse(test::read_file("tests/golden/data/llamacpp/quantize_default.json"));
  const std::string dir = test::temp_dir();
  ASSERT_EQ(test::run_cli("convert models/default " + dir + "/f16.gguf --type f16").code, 0);
  for (const auto& [preset, tensors] : golden["presets"].items()) {
    const std::string out = dir + "/" + preset + ".gguf";
    auto r = test::run_cli("convert " + dir + "/f16.gguf " + out + " --type " + preset);
    ASSERT_EQ(r.code, 0) << r.err;
    auto g = GgufFile::open(out);
    EXPECT_EQ(g->tensors().size(), tensors.size()) << preset;
    for (const GgufTensorInfo& t : g->tensors()) {
      ASSERT_TRUE(tensors.contains(t.name)) << preset << " " << t.name;
      EXPECT_EQ(std::string(dtype_name(t.view.dtype)), tensors[t.name][0].get<std::string>()) << preset << " " << t.name;
      EXPECT_EQ(test::sha256_hex(static_cast<const uint8_t*>(t.view.data), t.view.nbytes()),
                tensors[t.name][1].get<std::string>())
          << preset << " " << t.name << " bytes differ from llama-quantize's";
    }
  }
}

}  // namespace
}  // namespace mf
