// moeforge convert --format hf: a GGUF model (quantised, q/k rows interleaved) becomes a Hugging
// Face directory with the same tokenizer and, within rounding, the same f32 logits; what it
// cannot express is refused and nothing is left behind.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "test_util.h"

namespace mf {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

json logits(const std::string& model) {
  auto r = test::run_cli("logits --f32 -m " + model + " --tokens 1,200,37,4000,15,2");
  EXPECT_EQ(r.code, 0) << r.err;
  return r.code == 0 ? json::parse(r.out)["logits"] : json();
}

TEST(ConvertHf, QuantisedGgufBecomesAHuggingFaceDirectoryWithItsLogitsAndTokenizer) {
  const std::string dir = test::temp_dir();
  ASSERT_EQ(test::run_cli("convert models/default " + dir + "/q8.gguf --type q8_0").code, 0);
  auto r = test::run_cli("convert " + dir + "/q8.gguf " + dir + "/hf --format hf");
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* f : {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"})
    EXPECT_TRUE(fs::exists(dir + "/hf/" + f)) << f;
  const json a = logits(dir + "/q8.gguf"), b = logits(dir + "/hf");
  ASSERT_EQ(a.size(), b.size());
  double worst = 0;
  for (size_t t = 0; t < a.size(); ++t)
    for (size_t v = 0; v < a[t].size(); ++v) worst = std::max(worst, std::abs(a[t][v].get<double>() - b[t][v].get<double>()));
  EXPECT_LT(worst, 1e-3);
  const std::string text = "'Hello world 12345, what''s up?  ok'";
  auto ta = test::run_cli("tokenize -m " + dir + "/q8.gguf --prompt " + text);
  auto tb = test::run_cli("tokenize -m " + dir + "/hf --prompt " + text);
  EXPECT_EQ(ta.out, tb.out);
  // Refusals: an existing directory, a --type, a model it cannot express.
  r = test::run_cli("convert " + dir + "/q8.gguf " + dir + "/hf --format hf");
  EXPECT_NE(r.err.find("already exists"), std::string::npos) << r.err;
  r = test::run_cli("convert " + dir + "/q8.gguf " + dir + "/hf2 --format hf --type q8_0");
  EXPECT_NE(r.err.find("--type applies to GGUF output"), std::string::npos) << r.err;
  r = test::run_cli("convert tests/golden/data/models/qwen2-bias-gqa3 " + dir + "/hf3 --format hf");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("architecture 'qwen2' (llama only)"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir + "/hf3"));
  EXPECT_FALSE(fs::exists(dir + "/hf3.tmp"));
}

}  // namespace
}  // namespace mf
