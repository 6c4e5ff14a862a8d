// GPT-2's reversible byte <-> printable-character map used by byte-level BPE vocabularies:
// printable Latin-1 bytes map to themselves, the other 68 bytes to U+0100.. in byte order,
// so every byte string becomes a string of visible characters (space -> "Ġ", "\n" -> "Ċ").
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace mf::byte_level {

// UTF-8 of the character byte b maps to.
const std::string& byte_to_piece(uint8_t b);

// Maps each byte of text to its character (the form vocabulary pieces are written in).
std::string encode(std::string_view bytes);

// Reverses encode; a character outside the map is copied through as its UTF-8 bytes,
// as Hugging Face's ByteLevel decoder does.
std::string decode(std::string_view piece);

}  // namespace mf::byte_level
