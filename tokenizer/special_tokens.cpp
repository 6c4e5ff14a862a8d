#include "tokenizer/special_tokens.h"

#include <algorithm>

namespace mf {

SpecialTokenMatcher::SpecialTokenMatcher(const TokenizerSpec& spec, std::vector<TokenType> always,
                                         std::vector<TokenType> on_parse) {
  auto has = [](const std::vector<TokenType>& v, TokenType t) { return std::find(v.begin(), v.end(), t) != v.end(); };
  for (size_t id = 0; id < spec.tokens.size(); ++id) {
    const std::string& text = spec.tokens[id];
    const TokenType type = id < spec.types.size() ? spec.types[id] : TokenType::Normal;
    const bool is_always = has(always, type);
    if (text.empty() || !(is_always || has(on_parse, type))) continue;
    by_first_byte_[uint8_t(text[0])].push_back({text, int32_t(id), is_always});
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
    if (i > raw_start) out.push_back({-1, text.substr(raw_start, i - raw_start)});
    out.push_back({hit->id, text.substr(i, hit->text.size())});
    i += hit->text.size();
    raw_start = i;
  }
  if (raw_start < text.size()) out.push_back({-1, text.substr(raw_start)});
  return out;
}

}  // namespace mf
