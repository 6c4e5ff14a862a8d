// Tokenizers behind one interface. A TokenizerSpec is the portable description of a
// vocabulary (what GGUF stores as tokenizer.ggml.*); every tokenizer is built from one,
// so any input format can be written to GGUF and read back identically.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace mf {

enum class TokenType : int32_t {  // GGUF's llama_token_type values
  Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6
};

struct TokenizerSpec {
  // "llama": SentencePiece-style scored vocabulary (llama2.c tokenizer.bin, GGUF "llama",
  //          converted HF Llama-2 tokenizers); "gpt2": byte-level BPE with merges.
  std::string model = "gpt2";
  // Pre-tokenizer for byte-level BPE, in llama.cpp's tokenizer.ggml.pre naming:
  // "gpt-2" (GPT-2 regex), "llama-bpe" (Llama-3 regex), "qwen2", "smollm" (GPT-2 regex, as SmolLM).
  std::string pre = "gpt-2";
  std::vector<std::string> tokens;      // id -> piece (byte-level pieces use GPT-2's byte->unicode map)
  std::vector<float> scores;            // "llama" only (may be empty for gpt2)
  std::vector<TokenType> types;         // id -> type (Control for special tokens)
  std::vector<std::string> merges;      // "gpt2" only: "a b" in priority order
  int32_t bos_id = -1, eos_id = -1, unk_id = -1, pad_id = -1;
  bool add_bos = false;                 // prepend BOS when encoding with add_special
  bool add_eos = false;
  bool add_space_prefix = true;         // "llama" only: SentencePiece's dummy-prefix space
  std::string chat_template;            // optional Jinja template from tokenizer_config.json
  // "gpt2" details from tokenizer.json that GGUF has no standard key for:
  std::string normalizer;               // "" or "nfc" (Qwen2's NFC normalizer)
  bool ignore_merges = false;           // a pre-token found whole in the vocab is one token (Llama-3)
  bool add_prefix_space = false;        // ByteLevel(add_prefix_space): " " before each text fragment
  // Hugging Face added tokens' matching flags, empty or one entry per token: lstrip/rstrip,
  // a match also takes the whitespace before (kStripLeft) and/or after (kStripRight) it;
  // single_word (kSingleWord), a match counts only with no word character (alphanumeric or
  // '_') just before or after it.
  static constexpr uint8_t kStripLeft = 1, kStripRight = 2, kSingleWord = 4;
  std::vector<uint8_t> added_flags;
};

// Throws mf::Error when the spec is inconsistent (sizes, ids out of range, unknown model or
// pre-tokenizer, merges naming pieces outside the vocabulary). make_tokenizer calls it.
void validate_tokenizer_spec(const TokenizerSpec& spec);

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // add_special: add BOS/EOS as the spec says. parse_special: recognise special/added
  // token strings (e.g. "<|endoftext|>") in the text and emit their ids.
  virtual std::vector<int32_t> encode(std::string_view text, bool add_special, bool parse_special = false) const = 0;
  // Bytes of one token as it appears in text (control tokens give "").
  virtual std::string token_to_piece(int32_t id) const = 0;
  // Decodes a sequence. Handles SentencePiece's leading space and byte tokens.
  virtual std::string decode(const std::vector<int32_t>& ids) const = 0;
  const TokenizerSpec& spec() const { return spec_; }
  int32_t n_vocab() const { return int32_t(spec_.tokens.size()); }

 protected:
  explicit Tokenizer(TokenizerSpec spec) : spec_(std::move(spec)) {}
  TokenizerSpec spec_;
};

// Builds the tokenizer a spec describes. Throws mf::Error for an inconsistent spec.
std::unique_ptr<Tokenizer> make_tokenizer(TokenizerSpec spec);

// Hugging Face tokenizer.json (+ optional tokenizer_config.json beside it for bos/eos,
// add_bos_token and chat_template). Throws mf::Error naming the file on bad input.
TokenizerSpec load_hf_tokenizer_spec(const std::string& tokenizer_json_path);

// llama2.c tokenizer.bin (max_token_length, then per token: float score, int32 len, bytes).
// BOS=1, EOS=2, add_bos=true, as llama2.c's run.c uses it. Pieces and types come out as
// llama.cpp's convert-llama2c-to-ggml writes them to GGUF (spaces as U+2581, tokens 0-2
// renamed <unk>/<s>/</s>, <0xXX> byte tokens typed Byte). n_vocab <= 0 reads to the end.
TokenizerSpec load_llama2c_tokenizer_spec(const std::string& path, int32_t n_vocab);

// SentencePiece .model file, run through Debian's libsentencepiece. Its spec() holds the
// model's pieces, scores and types (model "llama"), plus add_bos_token/add_eos_token and
// chat_template from a tokenizer_config.json beside it when there is one.
std::unique_ptr<Tokenizer> load_sentencepiece_model(const std::string& path);

}  // namespace mf
