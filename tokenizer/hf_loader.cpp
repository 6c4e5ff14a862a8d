// Hugging Face tokenizer.json (byte-level BPE) -> TokenizerSpec. Only the pipelines the
// byte-level BPE tokenizer reproduces exactly are accepted; anything else fails by name
// rather than tokenizing differently from the reference.
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tokenizer/hf_config.h"
#include "tokenizer/split_regexes.h"
#include "tokenizer/tokenizer.h"

namespace mf {

namespace {

using nlohmann::json;

// Same regex, allowing the variant that ends in \s+(?!\S) without |\s+ (equivalent: the
// unmatched single space becomes its own piece either way).
bool same_regex(const std::string& got, const std::string& want) {
  return got == want || got + "|\\s+" == want;
}

struct Ctx {
  const std::string& path;
  [[noreturn]] void bad(const std::string& msg) const { fail(path, ": ", msg); }
};

bool flag(const json& j, const char* key, bool dflt) {
  return j.contains(key) && j[key].is_boolean() ? j[key].get<bool>() : dflt;
}

std::string type_of(const json& j) { return j.is_object() && j.contains("type") && j["type"].is_string() ? j["type"].get<std::string>() : ""; }

// Regex string of a Split pre-tokenizer that isolates its matches, or "" when not that.
std::string split_regex(const json& p) {
  if (type_of(p) != "Split" || !p.contains("pattern") || !p["pattern"].is_object()) return "";
  const auto& pat = p["pattern"];
  if (!pat.contains("Regex") || !pat["Regex"].is_string()) return "";
  if (p.value("behavior", "") != "Isolated" || flag(p, "invert", false)) return "";
  return pat["Regex"].get<std::string>();
}

void parse_pre_tokenizer(const json& pre, TokenizerSpec& spec, const Ctx& c) {
  const std::string type = type_of(pre);
  auto unsupported = [&]() { c.bad("unsupported pre-tokenizer " + pre.dump().substr(0, 300)); };
  if (type == "ByteLevel") {
    if (!flag(pre, "use_regex", true)) unsupported();
    spec.pre = "gpt-2";
    spec.add_prefix_space = flag(pre, "add_prefix_space", false);
    return;
  }
  if (type != "Sequence" || !pre.contains("pretokenizers") || !pre["pretokenizers"].is_array()) unsupported();
  const auto& seq = pre["pretokenizers"];
  if (seq.size() != 2 || type_of(seq[1]) != "ByteLevel" || flag(seq[1], "add_prefix_space", false)) unsupported();
  const bool byte_level_regex = flag(seq[1], "use_regex", true);
  const std::string regex = split_regex(seq[0]);
  if (!byte_level_regex && same_regex(regex, kLlama3Regex)) spec.pre = "llama-bpe";
  else if (!byte_level_regex && same_regex(regex, kQwen2Regex)) spec.pre = "qwen2";
  else if (!byte_level_regex && same_regex(regex, kGpt2Regex)) spec.pre = "gpt-2";
  else if (byte_level_regex && ((type_of(seq[0]) == "Digits" && flag(seq[0], "individual_digits", false)) ||
                                regex == "\\p{N}"))
    spec.pre = "smollm";  // digits isolated, then the GPT-2 regex
  else
    unsupported();
}

void parse_normalizer(const json& n, TokenizerSpec& spec, const Ctx& c) {
  if (n.is_null()) return;
  const std::string type = type_of(n);
  if (type == "NFC") { spec.normalizer = "nfc"; return; }
  if (type == "Sequence" && n.contains("normalizers") && n["normalizers"].is_array()) {
    const auto& seq = n["normalizers"];
    if (seq.empty()) return;
    if (seq.size() == 1 && type_of(seq[0]) == "NFC") { spec.normalizer = "nfc"; return; }
  }
  c.bad("unsupported normalizer " + n.dump().substr(0, 300) + " (supported: none, NFC)");
}

// Special tokens the post-processor puts before and after a single sequence.
struct PostSpecials { int32_t prepend = -1, append = -1; };

int32_t template_token_id(const json& pp, const std::string& name, const std::vector<std::string>& tokens, const Ctx& c) {
  if (pp.contains("special_tokens") && pp["special_tokens"].contains(name)) {
    const auto& ids = pp["special_tokens"][name]["ids"];
    if (ids.is_array() && ids.size() == 1 && ids[0].is_number_integer()) return ids[0].get<int32_t>();
    c.bad("post_processor special token '" + name + "' must map to exactly one id");
  }
  for (size_t i = 0; i < tokens.size(); ++i)
    if (tokens[i] == name) return int32_t(i);
  c.bad("post_processor names unknown special token '" + name + "'");
}

void parse_post_processor(const json& pp, const std::vector<std::string>& tokens, PostSpecials& out, const Ctx& c) {
  if (pp.is_null()) return;
  const std::string type = type_of(pp);
  if (type == "ByteLevel") return;
  if (type == "Sequence" && pp.contains("processors") && pp["processors"].is_array()) {
    for (const auto& p : pp["processors"]) parse_post_processor(p, tokens, out, c);
    return;
  }
  if (type == "TemplateProcessing" && pp.contains("single") && pp["single"].is_array()) {
    const auto& items = pp["single"];
    size_t seq_at = items.size();
    for (size_t i = 0; i < items.size(); ++i)
      if (items[i].is_object() && items[i].contains("Sequence")) seq_at = i;
    if (seq_at == items.size() || seq_at > 1 || items.size() - seq_at > 2)
      c.bad("unsupported post_processor template " + items.dump().substr(0, 300));
    auto special = [&](const json& item) {
      if (!item.is_object() || !item.contains("SpecialToken") || !item["SpecialToken"].contains("id"))
        c.bad("unsupported post_processor template item " + item.dump().substr(0, 200));
      return template_token_id(pp, item["SpecialToken"]["id"].get<std::string>(), tokens, c);
    };
    if (seq_at == 1) out.prepend = special(items[0]);
    if (seq_at + 1 < items.size()) out.append = special(items[seq_at + 1]);
    return;
  }
  if (type == "RobertaProcessing" || type == "BertProcessing") {
    auto id_of = [&](const char* key) {
      if (!pp.contains(key) || !pp[key].is_array() || pp[key].size() != 2 || !pp[key][1].is_number_integer())
        c.bad(std::string("post_processor '") + key + "' must be [token, id]");
      return pp[key][1].get<int32_t>();
    };
    out.prepend = id_of("cls");
    out.append = id_of("sep");
    return;
  }
  c.bad("unsupported post_processor " + pp.dump().substr(0, 300));
}

void parse_model(const json& m, TokenizerSpec& spec, std::vector<std::string>& merges_out, const Ctx& c) {
  if (!m.is_object()) c.bad("'model' is missing or not an object");
  const std::string type = type_of(m);
  if (!type.empty() && type != "BPE") c.bad("unsupported model type '" + type + "' (only byte-level BPE)");
  if (flag(m, "byte_fallback", false))
    c.bad("BPE with byte_fallback (SentencePiece-converted vocabulary) is not supported; load tokenizer.model instead");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (m.contains(key) && !m[key].is_null() && m[key] != "") c.bad(std::string("unsupported BPE option '") + key + "'");
  spec.ignore_merges = flag(m, "ignore_merges", false);

  if (!m.contains("vocab") || !m["vocab"].is_object()) c.bad("model.vocab is missing or not an object");
  for (const auto& [piece, id] : m["vocab"].items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= (1 << 24))
      c.bad("model.vocab['" + piece + "'] has a bad id " + id.dump());
    const auto i = size_t(id.get<int64_t>());
    if (spec.tokens.size() <= i) spec.tokens.resize(i + 1);
    if (!spec.tokens[i].empty()) c.bad("model.vocab gives id " + std::to_string(i) + " to two pieces");
    spec.tokens[i] = piece;
  }

  if (!m.contains("merges") || !m["merges"].is_array()) c.bad("model.merges is missing or not an array");
  merges_out.reserve(m["merges"].size());
  for (const auto& mg : m["merges"]) {
    if (mg.is_string()) {
      merges_out.push_back(mg.get<std::string>());
    } else if (mg.is_array() && mg.size() == 2 && mg[0].is_string() && mg[1].is_string()) {
      const auto a = mg[0].get<std::string>(), b = mg[1].get<std::string>();
      if (a.empty() || b.find(' ') != std::string::npos || a.find(' ', 1) != std::string::npos)
        c.bad("merge " + mg.dump() + " cannot be written as 'a b'");
      merges_out.push_back(a + " " + b);
    } else {
      c.bad("model.merges entry " + mg.dump().substr(0, 100) + " is neither \"a b\" nor [\"a\", \"b\"]");
    }
  }
}

}  // namespace

TokenizerSpec load_hf_tokenizer_spec(const std::string& path) {
  const Ctx c{path};
  json j;
  try {
    j = json::parse(read_whole_file(path, "tokenizer.json"));
  } catch (const json::exception& e) {
    fail(path, ": malformed JSON: ", e.what());
  }
  if (!j.is_object()) c.bad("expected a JSON object");

  TokenizerSpec spec;
  spec.model = "gpt2";
  try {
    parse_model(j.contains("model") ? j["model"] : json(), spec, spec.merges, c);
    spec.types.assign(spec.tokens.size(), TokenType::Normal);

    if (j.contains("added_tokens") && !j["added_tokens"].is_null()) {
      if (!j["added_tokens"].is_array()) c.bad("'added_tokens' is not an array");
      for (const auto& t : j["added_tokens"]) {
        if (!t.is_object() || !t.contains("id") || !t["id"].is_number_integer() || !t.contains("content") ||
            !t["content"].is_string())
          c.bad("added_tokens entry " + t.dump().substr(0, 100) + " needs an integer 'id' and a string 'content'");
        const int64_t id = t["id"].get<int64_t>();
        if (id < 0 || id >= (1 << 24)) c.bad("added token id " + std::to_string(id) + " out of range");
        if (spec.tokens.size() <= size_t(id)) {
          spec.tokens.resize(size_t(id) + 1);
          spec.types.resize(size_t(id) + 1, TokenType::Normal);
        }
        spec.tokens[id] = t["content"].get<std::string>();
        spec.types[id] = flag(t, "special", false) ? TokenType::Control : TokenType::UserDefined;
        const uint8_t flags = (flag(t, "lstrip", false) ? TokenizerSpec::kStripLeft : 0) |
                              (flag(t, "rstrip", false) ? TokenizerSpec::kStripRight : 0) |
                              (flag(t, "single_word", false) ? TokenizerSpec::kSingleWord : 0);
        if (flags) {
          if (spec.added_flags.size() <= size_t(id)) spec.added_flags.resize(size_t(id) + 1, 0);
          spec.added_flags[id] = flags;
        }
      }
    }
    for (size_t i = 0; i < spec.tokens.size(); ++i) {
      if (!spec.tokens[i].empty()) continue;
      spec.tokens[i] = "[PAD" + std::to_string(i) + "]";  // unassigned id, named as llama.cpp's converter does
      spec.types[i] = TokenType::Unused;
    }
    if (spec.tokens.empty()) c.bad("empty vocabulary");
    if (!spec.added_flags.empty()) spec.added_flags.resize(spec.tokens.size(), 0);

    auto id_of = [&](const std::string& piece) -> int32_t {
      for (size_t i = 0; i < spec.tokens.size(); ++i)
        if (spec.tokens[i] == piece) return int32_t(i);
      return -1;
    };
    const json& m = j["model"];
    if (m.contains("unk_token") && m["unk_token"].is_string()) spec.unk_id = id_of(m["unk_token"].get<std::string>());

    parse_pre_tokenizer(j.contains("pre_tokenizer") ? j["pre_tokenizer"] : json(), spec, c);
    parse_normalizer(j.contains("normalizer") ? j["normalizer"] : json(), spec, c);
    PostSpecials post;
    parse_post_processor(j.contains("post_processor") ? j["post_processor"] : json(), spec.tokens, post, c);

    const HfTokenizerConfig cfg = read_hf_tokenizer_config(parent_dir(path));
    if (cfg.bos_token) spec.bos_id = id_of(*cfg.bos_token);
    if (cfg.eos_token) spec.eos_id = id_of(*cfg.eos_token);
    if (cfg.pad_token) spec.pad_id = id_of(*cfg.pad_token);
    if (cfg.unk_token && spec.unk_id < 0) spec.unk_id = id_of(*cfg.unk_token);
    if (post.prepend >= 0) {
      spec.bos_id = post.prepend;
      spec.add_bos = true;
    }
    if (post.append >= 0) {
      if (spec.eos_id < 0) spec.eos_id = post.append;
      spec.add_eos = spec.eos_id == post.append;
    }
    // An explicit add_bos_token/add_eos_token wins, as transformers' Llama tokenizers do.
    if (cfg.add_bos_token) spec.add_bos = *cfg.add_bos_token && spec.bos_id >= 0;
    if (cfg.add_eos_token) spec.add_eos = *cfg.add_eos_token && spec.eos_id >= 0;
    spec.chat_template = cfg.chat_template;
  } catch (const json::exception& e) {  // a field of an unexpected JSON type
    fail(path, ": unexpected tokenizer.json structure: ", e.what());
  }
  try {
    validate_tokenizer_spec(spec);
  } catch (const Error& e) {
    fail(path, ": ", e.what());
  }
  return spec;
}

}  // namespace mf
