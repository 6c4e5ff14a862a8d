// Tokenizer unit tests: known ids, the pieces each layer produces, bad input and spec
// validation. Reference comparisons over many strings live in tests/golden.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/error.h"
#include "test_util.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace {

using nlohmann::json;
using Ids = std::vector<int32_t>;

std::string tiny_llama_json() { return mf::test::shared_dir() + "/models/tiny-llama-a/tokenizer.json"; }
std::string tok512() { return mf::test::shared_dir() + "/models/stories260K/tok512.bin"; }

// Expects fn to throw mf::Error whose message contains every one of parts.
template <typename Fn>
void expect_error(Fn&& fn, std::initializer_list<std::string> parts) {
  try {
    fn();
    ADD_FAILURE() << "no mf::Error thrown";
  } catch (const mf::Error& e) {
    for (const auto& p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what() << " lacks " << p;
  }
}

// ---- known ids ---------------------------------------------------------------------------

TEST(Tokenizer, TinyLlamaReadmeIds) {
  const auto spec = mf::load_hf_tokenizer_spec(tiny_llama_json());
  EXPECT_EQ(spec.model, "gpt2");
  EXPECT_EQ(spec.pre, "gpt-2");
  EXPECT_EQ(spec.tokens.size(), 1024u);
  EXPECT_EQ(spec.merges.size(), 767u);
  EXPECT_EQ(spec.bos_id, 0);
  EXPECT_EQ(spec.eos_id, 0);
  EXPECT_FALSE(spec.add_bos);
  EXPECT_EQ(spec.types[0], mf::TokenType::Control);
  auto tok = mf::make_tokenizer(spec);
  const std::vector<std::pair<std::string, Ids>> cases = {
      {"Hello, world!", {40, 501, 79, 12, 658, 356, 1}},
      {"def add(a, b):\n    return a + b\n",
       {68, 69, 70, 590, 68, 8, 65, 12, 274, 9, 26, 199, 221, 221, 221, 818, 259, 221, 11, 274, 199}},
      {"  h\xC3\xA9llo  w\xC3\xB6rld  \t\xE6\x97\xA5\xE6\x9C\xAC",
       {221, 285, 128, 103, 76, 76, 79, 221, 264, 128, 115, 82, 356, 221, 221, 198, 163, 246, 99, 163, 251, 106}},
  };
  for (const auto& [text, ids] : cases) {
    EXPECT_EQ(tok->encode(text, false), ids) << text;
    EXPECT_EQ(tok->encode(text, true), ids) << "add_bos is off for this vocabulary";
    EXPECT_EQ(tok->decode(ids), text);
  }
}

TEST(Tokenizer, SpecialTokensOnlyWhenParsed) {
  auto tok = mf::make_tokenizer(mf::load_hf_tokenizer_spec(tiny_llama_json()));
  const Ids with = tok->encode("a<|endoftext|>b", false, true);
  ASSERT_EQ(with.size(), 3u);
  EXPECT_EQ(with[1], 0);
  const Ids without = tok->encode("a<|endoftext|>b", false, false);
  EXPECT_EQ(std::count(without.begin(), without.end(), 0), 0);
  EXPECT_EQ(tok->decode(without), "a<|endoftext|>b");
  EXPECT_EQ(tok->token_to_piece(0), "");  // control tokens have no text
}

TEST(Tokenizer, BytesSurviveInvalidUtf8) {
  auto tok = mf::make_tokenizer(mf::load_hf_tokenizer_spec(tiny_llama_json()));
  const std::string text = "ok \xFF\xFE bad \xC3 end \xE6\x97 x\xF0\x9F\x98";
  EXPECT_EQ(tok->decode(tok->encode(text, false)), text);
}

TEST(Tokenizer, LongInputsRoundTrip) {
  auto tok = mf::make_tokenizer(mf::load_hf_tokenizer_spec(tiny_llama_json()));
  // A 200k-space run and a 200k-letter word are single pre-tokens: BPE must not go quadratic.
  for (const std::string& text : {std::string(200000, ' ') + "x", std::string(200000, 'a'), std::string(50000, '\n')}) {
    const Ids ids = tok->encode(text, false);
    EXPECT_EQ(tok->decode(ids), text);
  }
  const std::string prose = mf::test::read_file(mf::test::shared_dir() + "/data/eval/prose/frankenstein.txt");
  EXPECT_EQ(tok->decode(tok->encode(prose, false)), prose);
}

TEST(Tokenizer, ConcurrentEncodeIsConsistent) {
  auto tok = mf::make_tokenizer(mf::load_hf_tokenizer_spec(tiny_llama_json()));
  const std::string prose = mf::test::read_file(mf::test::shared_dir() + "/data/eval/prose/frankenstein.txt").substr(0, 100000);
  const Ids want = tok->encode(prose, false);
  std::vector<Ids> got(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) threads.emplace_back([&, t] { got[t] = tok->encode(prose, false); });
  for (auto& th : threads) th.join();
  for (const auto& g : got) EXPECT_EQ(g, want);
}

TEST(Tokenizer, OutOfRangeIdsThrow) {
  auto tok = mf::make_tokenizer(mf::load_hf_tokenizer_spec(tiny_llama_json()));
  expect_error([&] { tok->decode({1, 5000}); }, {"5000", "out of range"});
  expect_error([&] { tok->token_to_piece(-1); }, {"out of range"});
  auto spm = mf::make_tokenizer(mf::load_llama2c_tokenizer_spec(tok512(), 512));
  expect_error([&] { spm->decode({512}); }, {"out of range"});
}

// ---- llama2.c / SPM ------------------------------------------------------------------------

TEST(Tokenizer, Llama2cSpecAsConvertedToGguf) {
  const auto spec = mf::load_llama2c_tokenizer_spec(tok512(), 512);
  EXPECT_EQ(spec.model, "llama");
  ASSERT_EQ(spec.tokens.size(), 512u);
  EXPECT_EQ(spec.tokens[0], "<unk>");
  EXPECT_EQ(spec.tokens[1], "<s>");
  EXPECT_EQ(spec.tokens[2], "</s>");
  EXPECT_EQ(spec.types[0], mf::TokenType::Unknown);
  EXPECT_EQ(spec.types[1], mf::TokenType::Control);
  EXPECT_EQ(spec.tokens[3], "<0x00>");
  EXPECT_EQ(spec.types[3], mf::TokenType::Byte);
  EXPECT_EQ(spec.types[258], mf::TokenType::Byte);
  EXPECT_EQ(spec.tokens[259], "\xE2\x96\x81t");  // " t", space as U+2581
  EXPECT_EQ(spec.types[259], mf::TokenType::Normal);
  EXPECT_EQ(spec.scores[260], -1.0f);
  EXPECT_EQ(spec.bos_id, 1);
  EXPECT_EQ(spec.eos_id, 2);
  EXPECT_TRUE(spec.add_bos);
  EXPECT_EQ(mf::load_llama2c_tokenizer_spec(tok512(), 0).tokens.size(), 512u);  // 0: read to the end
}

TEST(Tokenizer, Llama2cEncodeDecode) {
  auto tok = mf::make_tokenizer(mf::load_llama2c_tokenizer_spec(tok512(), 512));
  // Ids from llama.cpp on stories260K.gguf (llama-completion --verbose-prompt).
  EXPECT_EQ(tok->encode("Hi\n there", true), (Ids{1, 320, 417, 13, 383}));
  EXPECT_EQ(tok->encode("", true), (Ids{1}));
  EXPECT_EQ(tok->encode("", false), (Ids{}));
  const Ids ids = tok->encode("Once upon a time \xE6\x97\xA5", true);
  EXPECT_EQ(tok->decode(ids), "Once upon a time \xE6\x97\xA5");  // dummy prefix dropped, bytes rejoined
  EXPECT_EQ(tok->token_to_piece(ids[1]).front(), ' ');         // pieces keep their space
  EXPECT_EQ(tok->token_to_piece(3 + 0x41), "A");                // byte token <0x41>
  EXPECT_EQ(tok->encode("<s>x", false, true).front(), 1);
  EXPECT_NE(tok->encode("<s>x", false, false).front(), 1);
}

// Cutting text into U+2581-led words (for the cache) must give what merging the whole text
// gives: a vocabulary with a piece holding an inner U+2581 turns the cut off.
TEST(Tokenizer, SpmWordSplitMatchesWholeText) {
  auto spec = mf::load_llama2c_tokenizer_spec(tok512(), 512);
  auto split = mf::make_tokenizer(spec);
  spec.tokens.push_back("\x01\xE2\x96\x81\x01");
  spec.scores.push_back(-1000.0f);
  spec.types.push_back(mf::TokenType::Normal);
  auto whole = mf::make_tokenizer(spec);
  std::string text = mf::test::read_file(mf::test::shared_dir() + "/data/eval/prose/frankenstein.txt").substr(0, 200000);
  text += "  double  spaces \xFF\xE2\x96 bad bytes \xE2\x96\x81\xE2\x96\x81 literal \xF0\xE2\x96\x81 end ";
  const Ids ids = split->encode(text, true);
  EXPECT_EQ(ids, whole->encode(text, true));
  // Like llama.cpp, a bad lead byte swallows the next bytes into one "character" (here a
  // U+2581), so invalid UTF-8 does not round-trip exactly; the bad bytes themselves survive.
  EXPECT_NE(split->decode(split->encode("ok \xFF\xFE bad", false)).find("\xFF\xFE"), std::string::npos);
}

TEST(Tokenizer, Llama2cTruncatedAndCorrupt) {
  const std::string bytes = mf::test::read_file(tok512());
  const std::string dir = mf::test::temp_dir();
  for (size_t len : {size_t(0), size_t(2), size_t(4), size_t(10), size_t(13), bytes.size() / 2, bytes.size() - 1}) {
    const std::string path = dir + "/t" + std::to_string(len) + ".bin";
    mf::test::write_file(path, bytes.substr(0, len));
    expect_error([&] { mf::load_llama2c_tokenizer_spec(path, 512); }, {path});
  }
  expect_error([&] { mf::load_llama2c_tokenizer_spec(tok512(), 513); }, {"truncated"});
  std::string bad = bytes;
  const int32_t negative = -5;
  std::memcpy(bad.data() + 8, &negative, 4);  // length of token 0
  mf::test::write_file(dir + "/neg.bin", bad);
  expect_error([&] { mf::load_llama2c_tokenizer_spec(dir + "/neg.bin", 512); }, {"length -5"});
  expect_error([&] { mf::load_llama2c_tokenizer_spec(dir + "/missing.bin", 512); }, {"missing.bin", "cannot open"});
}

// ---- tokenizer.json errors -------------------------------------------------------------------

// A minimal valid byte-level BPE tokenizer.json to mutate.
json tiny_json() {
  return json::parse(R"({
    "added_tokens": [{"id": 5, "content": "<eos>", "special": true}],
    "normalizer": null,
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
    "post_processor": null,
    "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, "\u0120": 3, "\u0120ab": 4},
              "merges": ["a b", ["\u0120", "ab"]]}
  })");
}

std::string write_json(const json& j) {
  const std::string path = mf::test::temp_dir() + "/tokenizer.json";
  mf::test::write_file(path, j.dump());
  return path;
}

TEST(Tokenizer, MinimalTokenizerJson) {
  const auto spec = mf::load_hf_tokenizer_spec(write_json(tiny_json()));
  EXPECT_EQ(spec.merges, (std::vector<std::string>{"a b", "\xC4\xA0 ab"}));
  EXPECT_EQ(spec.types[5], mf::TokenType::Control);
  auto tok = mf::make_tokenizer(spec);
  EXPECT_EQ(tok->encode("ab ab", false), (Ids{2, 4}));
  EXPECT_EQ(tok->encode("ab<eos>", false, true), (Ids{2, 5}));
}

TEST(Tokenizer, TokenizerJsonErrors) {
  expect_error([] { mf::load_hf_tokenizer_spec("no/such/dir/tokenizer.json"); }, {"no/such/dir/tokenizer.json", "cannot open"});
  const std::string dir = mf::test::temp_dir();
  mf::test::write_file(dir + "/tokenizer.json", "{\"model\": {\"vocab\": ");
  expect_error([&] { mf::load_hf_tokenizer_spec(dir + "/tokenizer.json"); }, {dir + "/tokenizer.json", "malformed JSON"});
  mf::test::write_file(dir + "/tokenizer.json", "[1, 2]");
  expect_error([&] { mf::load_hf_tokenizer_spec(dir + "/tokenizer.json"); }, {"JSON object"});

  struct Case { const char* what; std::function<void(json&)> mutate; const char* message; };
  const std::vector<Case> cases = {
      {"unknown pre-tokenizer", [](json& j) { j["pre_tokenizer"] = {{"type", "Whitespace"}}; }, "unsupported pre-tokenizer"},
      {"unknown split regex", [](json& j) {
         j["pre_tokenizer"] = json::parse(R"({"type": "Sequence", "pretokenizers": [
           {"type": "Split", "pattern": {"Regex": "\\w+"}, "behavior": "Isolated", "invert": false},
           {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}]})");
       }, "unsupported pre-tokenizer"},
      {"no pre-tokenizer", [](json& j) { j["pre_tokenizer"] = nullptr; }, "unsupported pre-tokenizer"},
      {"normalizer", [](json& j) { j["normalizer"] = {{"type", "Lowercase"}}; }, "unsupported normalizer"},
      {"byte fallback", [](json& j) { j["model"]["byte_fallback"] = true; }, "byte_fallback"},
      {"wordpiece", [](json& j) { j["model"]["type"] = "WordPiece"; }, "unsupported model type"},
      {"vocab not object", [](json& j) { j["model"]["vocab"] = json::array(); }, "model.vocab"},
      {"negative id", [](json& j) { j["model"]["vocab"]["x"] = -3; }, "bad id"},
      {"duplicate id", [](json& j) { j["model"]["vocab"]["x"] = 1; }, "two pieces"},
      {"bad merge entry", [](json& j) { j["model"]["merges"].push_back(42); }, "model.merges entry"},
      {"merges missing", [](json& j) { j["model"].erase("merges"); }, "model.merges"},
      {"added token without id", [](json& j) { j["added_tokens"].push_back({{"content", "x"}}); }, "added_tokens entry"},
      {"bad post processor", [](json& j) { j["post_processor"] = {{"type", "Mystery"}}; }, "unsupported post_processor"},
      {"vocab value string", [](json& j) { j["model"]["vocab"]["x"] = "7"; }, "bad id"},
  };
  for (const auto& c : cases) {
    json j = tiny_json();
    c.mutate(j);
    const std::string path = write_json(j);
    SCOPED_TRACE(c.what);
    expect_error([&] { mf::load_hf_tokenizer_spec(path); }, {path, c.message});
  }
  // A merge naming a piece outside the vocabulary fails when the tokenizer is built.
  json j = tiny_json();
  j["model"]["merges"].push_back("a zz");
  const auto spec = mf::load_hf_tokenizer_spec(write_json(j));
  expect_error([&] { mf::make_tokenizer(spec); }, {"merge 2", "not in the vocabulary"});
}

TEST(Tokenizer, TokenizerConfig) {
  const std::string dir = mf::test::temp_dir();
  json j = tiny_json();
  j["post_processor"] = json::parse(R"({"type": "TemplateProcessing",
      "single": [{"SpecialToken": {"id": "<eos>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
      "special_tokens": {"<eos>": {"id": "<eos>", "ids": [5], "tokens": ["<eos>"]}}})");
  mf::test::write_file(dir + "/tokenizer.json", j.dump());
  mf::test::write_file(dir + "/tokenizer_config.json",
                       R"({"bos_token": {"content": "a"}, "eos_token": "<eos>", "chat_template": "T"})");
  auto spec = mf::load_hf_tokenizer_spec(dir + "/tokenizer.json");
  EXPECT_TRUE(spec.add_bos);  // the template prepends <eos>: that is what encode adds
  EXPECT_EQ(spec.bos_id, 5);
  EXPECT_EQ(spec.eos_id, 5);
  EXPECT_EQ(spec.chat_template, "T");
  EXPECT_EQ(mf::make_tokenizer(spec)->encode("ab", true), (Ids{5, 2}));

  mf::test::write_file(dir + "/tokenizer_config.json", R"({"bos_token": "a", "add_bos_token": false})");
  spec = mf::load_hf_tokenizer_spec(dir + "/tokenizer.json");
  EXPECT_FALSE(spec.add_bos);  // explicit add_bos_token wins

  mf::test::write_file(dir + "/tokenizer_config.json", "{ not json");
  expect_error([&] { mf::load_hf_tokenizer_spec(dir + "/tokenizer.json"); }, {"tokenizer_config.json", "malformed JSON"});
  mf::test::write_file(dir + "/tokenizer_config.json", R"({"add_bos_token": "yes"})");
  expect_error([&] { mf::load_hf_tokenizer_spec(dir + "/tokenizer.json"); }, {"add_bos_token"});
}

// ---- spec validation -----------------------------------------------------------------------

mf::TokenizerSpec tiny_spec() {
  mf::TokenizerSpec s;
  s.tokens = {"a", "b", "ab", "<eos>"};
  s.types = {mf::TokenType::Normal, mf::TokenType::Normal, mf::TokenType::Normal, mf::TokenType::Control};
  s.merges = {"a b"};
  s.eos_id = 3;
  return s;
}

TEST(Tokenizer, SpecValidation) {
  EXPECT_EQ(mf::make_tokenizer(tiny_spec())->encode("ab", false), (Ids{2}));
  struct Case { const char* what; std::function<void(mf::TokenizerSpec&)> mutate; const char* message; };
  const std::vector<Case> cases = {
      {"empty", [](auto& s) { s.tokens.clear(); s.types.clear(); }, "empty vocabulary"},
      {"types size", [](auto& s) { s.types.pop_back(); }, "token types"},
      {"scores size", [](auto& s) { s.scores = {1.0f}; }, "scores"},
      {"bad type", [](auto& s) { s.types[0] = mf::TokenType(9); }, "bad type"},
      {"bos range", [](auto& s) { s.bos_id = 4; }, "bos id 4"},
      {"eos range", [](auto& s) { s.eos_id = -2; }, "eos id -2"},
      {"add_bos without bos", [](auto& s) { s.add_bos = true; }, "add_bos"},
      {"model", [](auto& s) { s.model = "wordpiece"; }, "unsupported model"},
      {"pre", [](auto& s) { s.pre = "falcon"; }, "unsupported pre-tokenizer 'falcon'"},
      {"merge form", [](auto& s) { s.merges = {"ab"}; }, "not of the form"},
      {"merge piece", [](auto& s) { s.merges = {"a c"}; }, "not in the vocabulary"},
      {"merges for llama", [](auto& s) { s.model = "llama"; }, "merges"},
      {"normalizer", [](auto& s) { s.normalizer = "nfkc"; }, "normalizer"},
  };
  for (const auto& c : cases) {
    auto s = tiny_spec();
    c.mutate(s);
    SCOPED_TRACE(c.what);
    expect_error([&] { mf::make_tokenizer(s); }, {c.message});
  }
}

// ---- SentencePiece -------------------------------------------------------------------------

TEST(Tokenizer, SentencePieceErrors) {
  expect_error([] { mf::load_sentencepiece_model("no/such.model"); }, {"no/such.model", "cannot open"});
  const std::string dir = mf::test::temp_dir();
  mf::test::write_file(dir + "/garbage.model", std::string("\x0a\xff\xff\xff\x0f garbage", 14));
  expect_error([&] { mf::load_sentencepiece_model(dir + "/garbage.model"); }, {"garbage.model"});
  mf::test::write_file(dir + "/empty.model", "");
  expect_error([&] { mf::load_sentencepiece_model(dir + "/empty.model"); }, {"empty.model"});
  const std::string good = mf::test::read_file("tests/golden/data/tokenizer/spm/tokenizer.model");
  mf::test::write_file(dir + "/half.model", good.substr(0, good.size() / 2));
  expect_error([&] { mf::load_sentencepiece_model(dir + "/half.model"); }, {"half.model"});
}

// ---- building blocks -----------------------------------------------------------------------

TEST(Tokenizer, ByteLevelMap) {
  EXPECT_EQ(mf::byte_level::encode(" "), "\xC4\xA0");   // Ġ
  EXPECT_EQ(mf::byte_level::encode("\n"), "\xC4\x8A");  // Ċ
  EXPECT_EQ(mf::byte_level::encode("a!~"), "a!~");
  std::string all;
  for (int b = 0; b < 256; ++b) all += char(b);
  EXPECT_EQ(mf::byte_level::decode(mf::byte_level::encode(all)), all);
}

std::vector<std::string> pieces(const std::string& text, mf::PreTokenizer pre) {
  std::vector<std::pair<size_t, size_t>> spans;
  mf::pretokenize(text, pre, spans);
  std::vector<std::string> out;
  for (auto [b, e] : spans) out.push_back(text.substr(b, e - b));
  return out;
}

TEST(Tokenizer, PreTokenizers) {
  using V = std::vector<std::string>;
  using P = mf::PreTokenizer;
  EXPECT_EQ(pieces("Hello  world's 1234 ok?!  \n", P::Gpt2),
            (V{"Hello", " ", " world", "'s", " 1234", " ok", "?!", "  \n"}));
  EXPECT_EQ(pieces("I'M 1234567 (x)\n\n  y", P::Llama3),
            (V{"I", "'M", " ", "123", "456", "7", " (", "x", ")\n\n", " ", " y"}));
  EXPECT_EQ(pieces("ab 12\r\n \tz", P::Qwen2), (V{"ab", " ", "1", "2", "\r\n", " ", "\tz"}));
  EXPECT_EQ(pieces("a 12b", P::SmolLM), (V{"a", " ", "1", "2", "b"}));
  EXPECT_EQ(pieces("caf\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC", P::Gpt2), (V{"caf\xC3\xA9", " \xE6\x97\xA5\xE6\x9C\xAC"}));
  EXPECT_EQ(pieces("", P::Llama3), V{});
  expect_error([] { mf::pre_tokenizer_from_name("jais"); }, {"unsupported pre-tokenizer 'jais'"});
}

TEST(Tokenizer, UnicodeClassesAndNfc) {
  using C = mf::unicode::CharClass;
  EXPECT_EQ(mf::unicode::classify('a'), C::Letter);
  EXPECT_EQ(mf::unicode::classify(0x65E5), C::Letter);   // 日
  EXPECT_EQ(mf::unicode::classify(0x0663), C::Number);   // Arabic-Indic 3
  EXPECT_EQ(mf::unicode::classify(0x00BD), C::Number);   // ½
  EXPECT_EQ(mf::unicode::classify(0x3000), C::Space);    // ideographic space
  EXPECT_EQ(mf::unicode::classify(0x0085), C::Space);
  EXPECT_EQ(mf::unicode::classify(0x001C), C::Other);    // Python's isspace says yes; \s says no
  EXPECT_EQ(mf::unicode::classify(0x1F600), C::Other);   // emoji
  EXPECT_EQ(mf::unicode::classify(mf::unicode::kInvalid), C::Other);

  EXPECT_EQ(mf::unicode::nfc("cafe\xCC\x81"), "caf\xC3\xA9");                  // e + acute -> é
  EXPECT_EQ(mf::unicode::nfc("\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8"), "\xEA\xB0\x81");  // jamo -> 각
  EXPECT_EQ(mf::unicode::nfc("a\xCC\xA7\xCC\x81"), "\xC3\xA1\xCC\xA7");      // acute passes the cedilla: á + cedilla
  EXPECT_EQ(mf::unicode::nfc("e\xCC\x81\xCC\xA7"), "\xC8\xA9\xCC\x81");      // reorder: ȩ + acute
  EXPECT_EQ(mf::unicode::nfc("\xE2\x84\xAB"), "\xC3\x85");                   // Angstrom sign -> Å
  EXPECT_EQ(mf::unicode::nfc("plain ascii"), "plain ascii");
  EXPECT_EQ(mf::unicode::nfc("x\xFF" "e\xCC\x81"), "x\xFF\xC3\xA9");         // bad byte kept
}

}  // namespace
