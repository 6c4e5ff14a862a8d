// SentencePiece-style scored vocabulary ("llama": llama2.c tokenizer.bin, GGUF "llama"),
// tokenized as llama.cpp's SPM tokenizer does: spaces become U+2581, a dummy-prefix space
// starts each text fragment, adjacent pieces merge best score first, and characters
// missing from the vocabulary fall back to <0xXX> byte tokens.
#pragma once
#include <array>
#include <string>
#include <unordered_map>
#include <vector>

#include "tokenizer/special_tokens.h"
#include "tokenizer/tokenizer.h"

namespace mf {

class SpmTokenizer final : public Tokenizer {
 public:
  explicit SpmTokenizer(TokenizerSpec spec);
  std::vector<int32_t> encode(std::string_view text, bool add_special, bool parse_special = false) const override;
  std::string token_to_piece(int32_t id) const override;
  // Concatenates pieces; drops the dummy-prefix space of the first text piece.
  std::string decode(const std::vector<int32_t>& ids) const override;

 private:
  void encode_fragment(const std::string& text, std::vector<int32_t>& out) const;
  int32_t find(std::string_view piece) const;

  std::unordered_map<std::string, int32_t> token_to_id_;
  std::array<int32_t, 256> byte_id_{};  // <0xXX> token of each byte, -1 if none
  SpecialTokenMatcher specials_;
};

// "▁" (U+2581), SentencePiece's visible space.
inline constexpr std::string_view kSpmSpace = "\xE2\x96\x81";

// Parses a byte token's text "<0xAB>"; returns -1 when text is not of that form.
int parse_byte_token(std::string_view text);

}  // namespace mf
