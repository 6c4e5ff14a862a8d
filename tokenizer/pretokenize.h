// Pre-tokenizers of byte-level BPE vocabularies: the split regexes of GPT-2, Llama-3,
// Qwen2 and SmolLM, hand-written as matchers over code points (std::regex has no \p{..}
// and is slow). Each follows the regex's backtracking semantics alternative by alternative.
#pragma once
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mf {

enum class PreTokenizer {
  Gpt2,    // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
  Llama3,  // (?i:'s|..|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
  Qwen2,   // as Llama3 with \p{N} (single digits)
  SmolLM,  // every \p{N} isolated, then Gpt2 on the rest
};

// Maps llama.cpp's tokenizer.ggml.pre name ("gpt-2", "llama-bpe", "qwen2", "smollm");
// throws mf::Error for others.
PreTokenizer pre_tokenizer_from_name(const std::string& name);

// Splits text into pre-tokens, appended to out as [begin, end) byte offsets. The pieces
// cover the text exactly, in order.
void pretokenize(std::string_view text, PreTokenizer pre, std::vector<std::pair<size_t, size_t>>& out);

}  // namespace mf
