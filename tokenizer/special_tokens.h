// Finds special/added token strings in text before normal tokenization: at each position
// the longest token starting there wins, scanning left to right (Hugging Face's
// leftmost-longest added-token matching). Tokens with lstrip/rstrip (TokenizerSpec::added_flags)
// also take the whitespace (Unicode White_Space) before/after them, as Hugging Face does; a
// single_word token's match next to a word character stays plain text, and its bytes cannot
// start another match (Hugging Face filters such matches after the leftmost-longest scan).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace mf {

class SpecialTokenMatcher {
 public:
  // always: token types matched whatever parse_special says (UserDefined added tokens);
  // on_parse: types matched only when parse_special is set (Control, ...).
  SpecialTokenMatcher(const TokenizerSpec& spec, std::vector<TokenType> always, std::vector<TokenType> on_parse);

  struct Fragment {
    int32_t id;             // >= 0: a matched token; -1: raw text
    std::string_view text;  // the raw text (for tokens: the match with any stripped whitespace)
  };
  std::vector<Fragment> split(std::string_view text, bool parse_special) const;

 private:
  struct Entry { std::string text; int32_t id; bool always; uint8_t flags; };
  std::vector<Entry> by_first_byte_[256];  // longest first
  bool any_always_ = false, any_ = false;
};

}  // namespace mf
