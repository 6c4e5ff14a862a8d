// llama2.c tokenizer.bin -> TokenizerSpec, matching what llama.cpp's convert-llama2c-to-ggml
// writes to GGUF so both paths tokenize identically.
#include <cstring>
#include <fstream>
#include <iterator>

#include "core/error.h"
#include "tokenizer/spm_tokenizer.h"
#include "tokenizer/tokenizer.h"

namespace mf {

TokenizerSpec load_llama2c_tokenizer_spec(const std::string& path, int32_t n_vocab) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(path, ": cannot open llama2.c tokenizer");
  const std::string data((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  size_t pos = 0;
  auto read = [&](void* dst, size_t n, const char* what, size_t id) {
    if (data.size() - pos < n) fail(path, ": truncated llama2.c tokenizer (", what, " of token ", id, " at byte ", pos, ")");
    std::memcpy(dst, data.data() + pos, n);
    pos += n;
  };
  int32_t max_token_length = 0;
  read(&max_token_length, 4, "header", 0);
  if (max_token_length <= 0) fail(path, ": bad llama2.c tokenizer header (max_token_length ", max_token_length, ")");

  TokenizerSpec spec;
  spec.model = "llama";
  for (size_t id = 0; n_vocab > 0 ? id < size_t(n_vocab) : pos < data.size(); ++id) {
    float score;
    int32_t len;
    read(&score, 4, "score", id);
    read(&len, 4, "length", id);
    if (len < 0 || len > max_token_length) fail(path, ": token ", id, " has length ", len, " (max_token_length ", max_token_length, ")");
    std::string text(size_t(len), '\0');
    read(text.data(), size_t(len), "text", id);

    TokenType type = TokenType::Normal;
    if (id == 0) { text = "<unk>"; type = TokenType::Unknown; }
    else if (id == 1) { text = "<s>"; type = TokenType::Control; }
    else if (id == 2) { text = "</s>"; type = TokenType::Control; }
    else if (text.empty()) type = TokenType::Control;
    else if (parse_byte_token(text) >= 0) type = TokenType::Byte;
    std::string escaped;  // spaces as U+2581, as the GGUF holds them
    for (char c : text) {
      if (c == ' ') escaped += kSpmSpace;
      else escaped += c;
    }
    spec.tokens.push_back(std::move(escaped));
    spec.scores.push_back(score);
    spec.types.push_back(type);
  }
  if (spec.tokens.size() < 3) fail(path, ": llama2.c tokenizer has ", spec.tokens.size(), " tokens, need at least 3");
  spec.unk_id = 0;
  spec.bos_id = 1;
  spec.eos_id = 2;
  spec.add_bos = true;
  spec.add_space_prefix = true;
  return spec;
}

}  // namespace mf
