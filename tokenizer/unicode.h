// UTF-8 decoding, the character classes the pre-tokenizer regexes use, and NFC.
// Decoding is lenient: a byte that does not start a valid sequence is reported as one
// invalid "character" so bytes always survive the round trip (tokenizers never throw on text).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace mf::unicode {

constexpr uint32_t kInvalid = 0xFFFFFFFFu;  // code point reported for an undecodable byte

struct Decoded {
  uint32_t cp;   // kInvalid for a bad byte
  uint32_t len;  // bytes consumed, >= 1
};

// Decodes the sequence at s[i] (i < s.size()); rejects overlongs, surrogates, > U+10FFFF.
Decoded decode_utf8(std::string_view s, size_t i);

void append_utf8(std::string& out, uint32_t cp);

// Character classes of the pre-tokenizer regexes: \p{L}, \p{N}, \s, and everything else
// (the class [^\s\p{L}\p{N}], which also holds invalid bytes).
enum class CharClass : uint8_t { Letter, Number, Space, Other };
CharClass classify(uint32_t cp);

// Canonical composition (NFC) as Hugging Face's NFC normalizer applies it. Invalid bytes
// pass through unchanged. Text that is already NFC by the quick check is copied without work.
std::string nfc(std::string_view s);

}  // namespace mf::unicode
