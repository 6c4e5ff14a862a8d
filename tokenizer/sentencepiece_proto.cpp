#include "tokenizer/sentencepiece_proto.h"

#include <cstring>

#include "core/error.h"

namespace mf {

namespace {

// Protocol buffer wire reader over one message; fails instead of reading past the end.
class Reader {
 public:
  Reader(std::string_view b, const std::string& what) : b_(b), what_(what) {}
  bool done() const { return pos_ >= b_.size(); }

  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (done()) fail(what_, ": truncated SentencePiece model (varint)");
      const auto byte = uint8_t(b_[pos_++]);
      v |= uint64_t(byte & 0x7F) << shift;
      if (!(byte & 0x80)) return v;
    }
    fail(what_, ": malformed SentencePiece model (varint too long)");
  }
  std::string_view bytes() {
    const uint64_t n = varint();
    if (n > b_.size() - pos_) fail(what_, ": truncated SentencePiece model (field of ", n, " bytes)");
    std::string_view s = b_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  float fixed32_float() {
    if (b_.size() - pos_ < 4) fail(what_, ": truncated SentencePiece model (fixed32)");
    float f;
    std::memcpy(&f, b_.data() + pos_, 4);
    pos_ += 4;
    return f;
  }
  void skip(uint32_t wire_type) {
    switch (wire_type) {
      case 0: varint(); break;
      case 1: advance(8); break;
      case 2: bytes(); break;
      case 5: advance(4); break;
      default: fail(what_, ": malformed SentencePiece model (wire type ", wire_type, ")");
    }
  }

 private:
  void advance(size_t n) {
    if (b_.size() - pos_ < n) fail(what_, ": truncated SentencePiece model");
    pos_ += n;
  }
  std::string_view b_;
  size_t pos_ = 0;
  const std::string& what_;
};

}  // namespace

SentencePieceModelInfo parse_sentencepiece_model(std::string_view bytes, const std::string& what) {
  SentencePieceModelInfo info;
  Reader top(bytes, what);
  while (!top.done()) {
    const uint64_t key = top.varint();
    const auto field = uint32_t(key >> 3), wire = uint32_t(key & 7);
    if (field == 1 && wire == 2) {  // SentencePiece { piece = 1; score = 2; type = 3 }
      Reader m(top.bytes(), what);
      SentencePieceModelInfo::Piece p;
      while (!m.done()) {
        const uint64_t k = m.varint();
        const auto f = uint32_t(k >> 3), w = uint32_t(k & 7);
        if (f == 1 && w == 2) p.text = std::string(m.bytes());
        else if (f == 2 && w == 5) p.score = m.fixed32_float();
        else if (f == 3 && w == 0) {
          const uint64_t t = m.varint();
          if (t < 1 || t > 6) fail(what, ": piece ", info.pieces.size(), " has unknown type ", t);
          p.type = TokenType(int32_t(t));
        } else m.skip(w);
      }
      info.pieces.push_back(std::move(p));
    } else if ((field == 2 || field == 3) && wire == 2) {  // TrainerSpec / NormalizerSpec
      Reader m(top.bytes(), what);
      while (!m.done()) {
        const uint64_t k = m.varint();
        const auto f = uint32_t(k >> 3), w = uint32_t(k & 7);
        if (field == 2 && f == 3 && w == 0) info.model_type = int(m.varint());
        else if (field == 3 && f == 1 && w == 2) info.normalizer_name = std::string(m.bytes());
        else if (field == 3 && f == 3 && w == 0) info.add_dummy_prefix = m.varint() != 0;
        else m.skip(w);
      }
    } else {
      top.skip(wire);
    }
  }
  if (info.pieces.empty()) fail(what, ": SentencePiece model has no pieces");
  return info;
}

}  // namespace mf
