// Just enough of SentencePiece's ModelProto wire format to read what the processor API
// does not expose: the exact piece types (user-defined pieces) and add_dummy_prefix.
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace mf {

struct SentencePieceModelInfo {
  struct Piece { std::string text; float score = 0; TokenType type = TokenType::Normal; };
  std::vector<Piece> pieces;
  bool add_dummy_prefix = true;          // NormalizerSpec field 3, default true
  std::string normalizer_name;           // NormalizerSpec field 1 ("identity", "nmt_nfkc", ...)
  int model_type = 1;                    // TrainerSpec field 3: 1 unigram, 2 bpe, 3 word, 4 char
};

// Throws mf::Error (naming `what`) on a malformed message.
SentencePieceModelInfo parse_sentencepiece_model(std::string_view bytes, const std::string& what);

}  // namespace mf
