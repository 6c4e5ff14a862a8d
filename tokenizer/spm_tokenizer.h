// SentencePiece-style scored vocabulary ("llama": llama2.c tokenizer.bin, GGUF "llama"),
// tokenized as llama.cpp's SPM tokenizer does: spaces become U+2581, a dummy-prefix space
// starts each text fragment, adjacent pieces merge best score first, and characters
// missing from the vocabulary fall back to <0xXX> byte tokens.
#pragma once
#include <array>
#include <mutex>
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
  void encode_fragment(std::string_view text, std::vector<int32_t>& out) const;
  void encode_cached(std::string_view word, std::vector<int32_t>& out) const;
  void merge(std::string_view text, std::vector<int32_t>& out) const;
  int32_t find(std::string_view piece) const;

  // Looked up by string_view without allocating (C++20 heterogeneous lookup).
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, int32_t, Hash, std::equal_to<>> token_to_id_;
  std::array<int32_t, 256> byte_id_{};  // <0xXX> token of each byte, -1 if none
  SpecialTokenMatcher specials_;
  // When no piece has a U+2581 after another character, no merge can cross the start of a
  // U+2581 run, so text is cut there into words merged (and cached) separately; the result
  // is what merging the whole fragment gives.
  bool split_words_ = false;
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>, Hash, std::equal_to<>> cache_;
};

// "▁" (U+2581), SentencePiece's visible space.
inline constexpr std::string_view kSpmSpace = "\xE2\x96\x81";

// Parses a byte token's text "<0xAB>"; returns -1 when text is not of that form.
int parse_byte_token(std::string_view text);

}  // namespace mf
