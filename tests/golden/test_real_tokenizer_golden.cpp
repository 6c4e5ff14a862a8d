// The real checkpoints' vocabularies (SmolLM2's BPE, Gemma 3's 262k SentencePiece-style one) as
// GGUF stores them tokenize as llama.cpp's llama-tokenize does on the same files
// (tests/golden/data/tokenizer/golden_real_models.json, scripts/make_real_tokenizer_goldens.py).
// Skips when the models are not in the cache (`moeforge pull`; test_real_models.cpp pulls them).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "model/model.h"
#include "test_util.h"

namespace mf {
namespace {

class RealTokenizer : public ::testing::TestWithParam<std::pair<std::string, std::string>> {};

TEST_P(RealTokenizer, MatchesLlamaCpp) {
  const auto& [name, file] = GetParam();
  const std::string path = test::pulled_model_file(name, file);
  if (path.empty()) GTEST_SKIP() << name << " is not in the moeforge cache: run `moeforge pull " << name << "`";
  const auto g = nlohmann::json::parse(test::read_file("tests/golden/data/tokenizer/golden_real_models.json"));
  auto m = load_model(path);
  const Tokenizer& tok = m->require_tokenizer();
  int checked = 0;
  for (const auto& c : g["models"][name]) {
    const std::string text = c["text"];
    EXPECT_EQ(tok.encode(text, false, false), c["ids"].get<std::vector<int32_t>>()) << name << " text: " << text;
    EXPECT_EQ(tok.encode(text, true, true), c["ids_special"].get<std::vector<int32_t>>())
        << name << " (BOS, special tokens parsed) text: " << text;
    ++checked;
  }
  EXPECT_GT(checked, 30);
}

INSTANTIATE_TEST_SUITE_P(Pulled, RealTokenizer,
                         ::testing::Values(std::pair<std::string, std::string>{"smollm2-135m-instruct",
                                                                               "SmolLM2-135M-Instruct.Q4_1.gguf"},
                                           std::pair<std::string, std::string>{"gemma3-270m", "gemma-3-270m-q4_k_m.gguf"}),
                         [](const auto& info) { return info.param.first == "gemma3-270m" ? "Gemma3" : "SmolLM2"; });

}  // namespace
}  // namespace mf
