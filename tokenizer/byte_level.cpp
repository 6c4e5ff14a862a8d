#include "tokenizer/byte_level.h"

#include <array>

#include "tokenizer/unicode.h"

namespace mf::byte_level {

namespace {

struct Tables {
  std::array<std::string, 256> piece;       // byte -> UTF-8 of its character
  std::array<int16_t, 324> byte_of;         // character (< 324) -> byte, -1 if none
};

const Tables& tables() {
  static const Tables t = [] {
    Tables t;
    t.byte_of.fill(-1);
    uint32_t next = 256;
    for (uint32_t b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      const uint32_t cp = printable ? b : next++;
      unicode::append_utf8(t.piece[b], cp);
      t.byte_of[cp] = int16_t(b);
    }
    return t;
  }();
  return t;
}

}  // namespace

const std::string& byte_to_piece(uint8_t b) { return tables().piece[b]; }

std::string encode(std::string_view bytes) {
  const auto& t = tables();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) out += t.piece[uint8_t(c)];
  return out;
}

std::string decode(std::string_view piece) {
  const auto& t = tables();
  std::string out;
  out.reserve(piece.size());
  for (size_t i = 0; i < piece.size();) {
    const auto [cp, len] = unicode::decode_utf8(piece, i);
    if (cp < t.byte_of.size() && t.byte_of[cp] >= 0) out += char(t.byte_of[cp]);
    else out.append(piece.substr(i, len));
    i += len;
  }
  return out;
}

}  // namespace mf::byte_level
