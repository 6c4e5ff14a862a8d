// Token ids against independent references (HF tokenizers, sentencepiece, llama.cpp);
// goldens from scripts/make_tokenizer_goldens.py.
#include <gtest/gtest.h>

#include <bit>
#include <functional>
#include <nlohmann/json.hpp>

#include "model/loaders.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace {

using nlohmann::json;

const std::string kDir = "tests/golden/data/tokenizer/";

json load_golden(const std::string& name) { return json::parse(mf::test::read_file(kDir + "golden_" + name + ".json")); }

std::string tokenizer_path(const json& g) {
  const std::string file = g["file"];
  return g["base"] == "shared" ? mf::test::shared_dir() + "/" + file : file;
}

// Printable form of a test string for failure messages.
std::string show(const std::string& s) { return json(s).dump(); }

// Checks every case of a golden against a tokenizer; skip(text) leaves cases out.
void check_cases(const mf::Tokenizer& tok, const json& g, const std::function<bool(const std::string&)>& skip = {}) {
  int checked = 0;
  for (const auto& c : g["cases"]) {
    const std::string text = c["text"];
    if (skip && skip(text)) continue;
    if (!c["ids"].is_null()) {
      const auto want = c["ids"].get<std::vector<int32_t>>();
      EXPECT_EQ(tok.encode(text, false, false), want) << "text " << show(text);
      if (!c["decoded"].is_null()) {
        EXPECT_EQ(tok.decode(want), c["decoded"].get<std::string>()) << "text " << show(text);
      }
      ++checked;
    }
    if (!c["ids_special"].is_null()) {
      const auto want = c["ids_special"].get<std::vector<int32_t>>();
      EXPECT_EQ(tok.encode(text, true, true), want) << "text " << show(text) << " (add_special, parse_special)";
      if (!c["decoded_special"].is_null()) {
        EXPECT_EQ(tok.decode(want), c["decoded_special"].get<std::string>()) << "text " << show(text) << " (special)";
      }
      ++checked;
    }
  }
  EXPECT_GT(checked, 20);
}

class HfGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(HfGolden, MatchesHuggingFaceTokenizers) {
  const json g = load_golden(GetParam());
  ASSERT_EQ(g["kind"], "hf");
  auto tok = mf::make_tokenizer(mf::load_hf_tokenizer_spec(tokenizer_path(g)));
  check_cases(*tok, g);
}

// convert writes the vocabulary into GGUF; reading it back must tokenize identically.
TEST_P(HfGolden, SurvivesGgufRoundTrip) {
  const json g = load_golden(GetParam());
  mf::GgufWriter w;
  mf::tokenizer_spec_to_gguf(mf::load_hf_tokenizer_spec(tokenizer_path(g)), w);
  const std::string path = mf::test::temp_dir() + "/tok.gguf";
  w.write(path);
  auto tok = mf::make_tokenizer(mf::tokenizer_spec_from_gguf(*mf::GgufFile::open(path)));
  check_cases(*tok, g);
}

INSTANTIATE_TEST_SUITE_P(Tokenizers, HfGolden,
                         ::testing::Values("tiny_llama_a", "llama3", "qwen2", "smollm", "gpt2_prefix", "added_strip", "added_single_word",
                                           "moeforge_bpe"));

TEST(TokenizerGolden, HfFixtureSpecs) {
  auto spec = [](const std::string& name) { return mf::load_hf_tokenizer_spec(kDir + name + "/tokenizer.json"); };
  const auto llama3 = spec("llama3");
  EXPECT_EQ(llama3.pre, "llama-bpe");
  EXPECT_TRUE(llama3.ignore_merges);
  EXPECT_TRUE(llama3.add_bos);
  EXPECT_EQ(llama3.tokens.at(llama3.bos_id), "<|begin_of_text|>");
  EXPECT_EQ(llama3.tokens.at(llama3.eos_id), "<|end_of_text|>");
  EXPECT_EQ(llama3.types.at(llama3.bos_id), mf::TokenType::Control);
  EXPECT_NE(llama3.chat_template.find("<|start_header_id|>"), std::string::npos);

  const auto qwen2 = spec("qwen2");
  EXPECT_EQ(qwen2.pre, "qwen2");
  EXPECT_EQ(qwen2.normalizer, "nfc");
  EXPECT_FALSE(qwen2.add_bos);
  EXPECT_EQ(qwen2.bos_id, -1);
  EXPECT_EQ(qwen2.tokens.at(qwen2.eos_id), "<|im_end|>");
  EXPECT_EQ(qwen2.tokens.at(qwen2.pad_id), "<|endoftext|>");

  const auto smollm = spec("smollm");
  EXPECT_EQ(smollm.pre, "smollm");
  EXPECT_FALSE(smollm.add_bos);
  EXPECT_EQ(smollm.bos_id, 1);
  EXPECT_EQ(smollm.eos_id, 2);

  const auto gpt2 = spec("gpt2_prefix");
  EXPECT_EQ(gpt2.pre, "gpt-2");
  EXPECT_TRUE(gpt2.add_prefix_space);
  int user_defined = 0;
  for (size_t i = 0; i < gpt2.tokens.size(); ++i)
    if (gpt2.types[i] == mf::TokenType::UserDefined) {
      EXPECT_EQ(gpt2.tokens[i], "<custom>");
      ++user_defined;
    }
  EXPECT_EQ(user_defined, 1);
}

TEST(TokenizerGolden, SentencePieceModelMatchesSentencePiece) {
  const json g = load_golden("spm");
  auto tok = mf::load_sentencepiece_model(tokenizer_path(g));
  check_cases(*tok, g);
}

// The spec taken from the .model, run by our own SPM tokenizer ("llama", as llama.cpp would
// after conversion to GGUF), gives sentencepiece's ids for a BPE model with identity
// normalization. User-defined pieces are left out: llama.cpp restarts the dummy prefix
// after them, sentencepiece does not.
TEST(TokenizerGolden, SentencePieceSpecRunByLlamaTokenizer) {
  const json g = load_golden("spm");
  auto sp = mf::load_sentencepiece_model(tokenizer_path(g));
  const auto& spec = sp->spec();
  EXPECT_EQ(spec.model, "llama");
  EXPECT_TRUE(spec.add_bos);
  EXPECT_TRUE(spec.add_space_prefix);
  EXPECT_EQ(spec.bos_id, 1);
  EXPECT_EQ(spec.eos_id, 2);
  EXPECT_EQ(spec.unk_id, 0);
  int bytes = 0, user_defined = 0;
  for (size_t i = 0; i < spec.tokens.size(); ++i) {
    bytes += spec.types[i] == mf::TokenType::Byte;
    if (spec.types[i] == mf::TokenType::UserDefined) {
      EXPECT_EQ(spec.tokens[i], "<custom>");
      ++user_defined;
    }
  }
  EXPECT_EQ(bytes, 256);
  EXPECT_EQ(user_defined, 1);
  auto llama = mf::make_tokenizer(spec);
  check_cases(*llama, g, [](const std::string& t) { return t.find("<custom>") != std::string::npos; });
}

TEST(TokenizerGolden, Llama2cMatchesLlamaCpp) {
  const json g = load_golden("stories260k");
  auto tok = mf::make_tokenizer(mf::load_llama2c_tokenizer_spec(tokenizer_path(g), 512));
  check_cases(*tok, g);
}

// tok512.bin read directly must hold exactly what convert-llama2c-to-ggml wrote to the GGUF.
TEST(TokenizerGolden, Llama2cSpecEqualsGgufVocab) {
  const json g = json::parse(mf::test::read_file(kDir + "gguf_vocab_stories260k.json"));
  const auto spec = mf::load_llama2c_tokenizer_spec(mf::test::shared_dir() + "/models/stories260K/tok512.bin", 512);
  EXPECT_EQ(spec.model, g["model"]);
  EXPECT_EQ(spec.bos_id, g["bos_id"].get<int>());
  EXPECT_EQ(spec.eos_id, g["eos_id"].get<int>());
  EXPECT_EQ(spec.unk_id, g["unk_id"].get<int>());
  const auto& vocab = g["vocab"];
  ASSERT_EQ(spec.tokens.size(), vocab.size());
  for (size_t i = 0; i < vocab.size(); ++i) {
    EXPECT_EQ(spec.tokens[i], vocab[i][0].get<std::string>()) << "token " << i;
    const float want = vocab[i][1].get<float>();
    EXPECT_EQ(std::bit_cast<uint32_t>(spec.scores[i]), std::bit_cast<uint32_t>(want)) << "score of token " << i;
    EXPECT_EQ(int(spec.types[i]), vocab[i][2].get<int>()) << "type of token " << i;
  }
}

}  // namespace
