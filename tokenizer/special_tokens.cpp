#include "tokenizer/special_tokens.h"

#include <algorithm>

#include "tokenizer/unicode.h"

namespace mf {

namespace {

bool is_space(std::string_view s, size_t i, uint32_t* len) {
  unicode::Decoded d = unicode::decode_utf8(s, i);
  *len = d.len;
  return d.cp != unicode::kInvalid && unicode::classify(d.cp) == unicode::CharClass::Space;
}

// Bytes of whitespace at the start of s.
size_t leading_space(std::string_view s) {
  size_t i = 0;
  uint32_t len = 0;
  while (i < s.size() && is_space(s, i, &len)) i += len;
  return i;
}

// Where the whitespace at the end of s begins (s.size() if none).
size_t trailing_space_start(std::string_view s) {
  size_t end = 0;  // just past the last non-space character
  uint32_t len = 0;
  for (size_t i = 0; i < s.size(); i += len)
    if (!is_space(s, i, &len)) end = i + len;
  return end;
}

// Hugging Face's word characters for single_word tokens: Rust's char::is_alphanumeric
// (letters and numbers here) or '_'.
bool is_word_cp(uint32_t cp) {
  if (cp == '_') return true;
  if (cp == unicode::kInvalid) return false;
  const unicode::CharClass c = unicode::classify(cp);
  return c == unicode::CharClass::Letter || c == unicode::CharClass::Number;
}

bool word_char_at(std::string_view s, size_t i) { return i < s.size() && is_word_cp(unicode::decode_utf8(s, i).cp); }

bool word_char_before(std::string_view s, size_t i) {
  if (i == 0) return false;
  size_t b = i - 1;
  while (b > 0 && i - b < 4 && (uint8_t(s[b]) & 0xC0) == 0x80) --b;  // back to the character's lead byte
  return is_word_cp(unicode::decode_utf8(s, b).cp);
}

}  // namespace

SpecialTokenMatcher::SpecialTokenMatcher(const TokenizerSpec& spec, std::vector<TokenType> always,
                                         std::vector<TokenType> on_parse) {
  auto has = [](const std::vector<TokenType>& v, TokenType t) { return std::find(v.begin(), v.end(), t) != v.end(); };
  for (size_t id = 0; id < spec.tokens.size(); ++id) {
    const std::string& text = spec.tokens[id];
    const TokenType type = id < spec.types.size() ? spec.types[id] : TokenType::Normal;
    const bool is_always = has(always, type);
    if (text.empty() || !(is_always || has(on_parse, type))) continue;
    const uint8_t flags = id < spec.added_flags.size() ? spec.added_flags[id] : 0;
    by_first_byte_[uint8_t(text[0])].push_back({text, int32_t(id), is_always, flags});
    any_ = true;
    any_always_ = any_always_ || is_always;
  }
  for (auto& v : by_first_byte_)
    std::stable_sort(v.begin(), v.end(), [](const Entry& a, const Entry& b) { return a.text.size() > b.text.size(); });
}

std::vector<SpecialTokenMatcher::Fragment> SpecialTokenMatcher::split(std::string_view text, bool parse_special) const {
  std::vector<Fragment> out;
  if (!(parse_special ? any_ : any_always_)) {
    if (!text.empty()) out.push_back({-1, text});
    return out;
  }
  size_t raw_start = 0;
  for (size_t i = 0; i < text.size();) {
    const Entry* hit = nullptr;
    for (const Entry& e : by_first_byte_[uint8_t(text[i])]) {
      if ((e.always || parse_special) && text.compare(i, e.text.size(), e.text) == 0) {
        hit = &e;
        break;
      }
    }
    if (!hit) { ++i; continue; }
    size_t start = i, end = i + hit->text.size();
    if ((hit->flags & TokenizerSpec::kSingleWord) && (word_char_before(text, start) || word_char_at(text, end))) {
      i = end;  // inside a word: plain text
      continue;
    }
    if (hit->flags & TokenizerSpec::kStripLeft) start = raw_start + trailing_space_start(text.substr(raw_start, i - raw_start));
    if (hit->flags & TokenizerSpec::kStripRight) end += leading_space(text.substr(end));
    if (start > raw_start) out.push_back({-1, text.substr(raw_start, start - raw_start)});
    out.push_back({hit->id, text.substr(start, end - start)});
    i = end;
    raw_start = i;
  }
  if (raw_start < text.size()) out.push_back({-1, text.substr(raw_start)});
  return out;
}

}  // namespace mf
