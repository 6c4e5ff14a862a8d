// Byte-level BPE ("gpt2" vocabularies: GPT-2, Llama-3, Qwen2, SmolLM) as Hugging Face
// tokenizers runs it: added tokens split out, optional NFC, regex pre-tokenization, GPT-2
// byte map, merges applied lowest rank first.
#pragma once
#include <array>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "tokenizer/pretokenize.h"
#include "tokenizer/special_tokens.h"
#include "tokenizer/tokenizer.h"

namespace mf {

class BpeTokenizer final : public Tokenizer {
 public:
  explicit BpeTokenizer(TokenizerSpec spec);  // throws mf::Error on a bad spec
  std::vector<int32_t> encode(std::string_view text, bool add_special, bool parse_special = false) const override;
  std::string token_to_piece(int32_t id) const override;
  std::string decode(const std::vector<int32_t>& ids) const override;

 private:
  struct Merge { int32_t rank, result; };
  static uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }

  void encode_fragment(std::string_view text, std::vector<int32_t>& out) const;
  void encode_word(std::string_view word, std::vector<int32_t>& out) const;
  void bpe(std::string_view word, std::vector<int32_t>& out) const;

  PreTokenizer pre_;
  std::unordered_map<std::string, int32_t> token_to_id_;  // byte-mapped piece -> id
  std::array<int32_t, 256> byte_id_{};                    // token of each single byte, -1 if none
  std::unordered_map<uint64_t, Merge> merges_;            // (left id, right id) -> rank, result
  SpecialTokenMatcher specials_;

  // Words repeat a lot in text: remember each word's ids (bounded, shared by threads).
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

}  // namespace mf
