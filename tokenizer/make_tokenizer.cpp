// Spec validation and the factory choosing the implementation a spec describes.
#include "core/error.h"
#include "tokenizer/bpe_tokenizer.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/spm_tokenizer.h"
#include "tokenizer/tokenizer.h"

namespace mf {

void validate_tokenizer_spec(const TokenizerSpec& s) {
  if (s.model != "gpt2" && s.model != "llama")
    fail("tokenizer: unsupported model '", s.model, "' (supported: gpt2, llama)");
  const size_t n = s.tokens.size();
  if (n == 0) fail("tokenizer: empty vocabulary");
  if (n > size_t(INT32_MAX)) fail("tokenizer: vocabulary too large");
  if (!s.types.empty() && s.types.size() != n)
    fail("tokenizer: ", s.types.size(), " token types for ", n, " tokens");
  if (!s.scores.empty() && s.scores.size() != n)
    fail("tokenizer: ", s.scores.size(), " scores for ", n, " tokens");
  for (size_t i = 0; i < s.types.size(); ++i) {
    const auto t = int32_t(s.types[i]);
    if (t < int32_t(TokenType::Normal) || t > int32_t(TokenType::Byte)) fail("tokenizer: token ", i, " has bad type ", t);
  }
  for (auto [name, id] : {std::pair{"bos", s.bos_id}, {"eos", s.eos_id}, {"unk", s.unk_id}, {"pad", s.pad_id}})
    if (id < -1 || id >= int32_t(n)) fail("tokenizer: ", name, " id ", id, " out of range [0, ", n, ")");
  if (!s.added_flags.empty() && s.added_flags.size() != n)
    fail("tokenizer: ", s.added_flags.size(), " added-token flags for ", n, " tokens");
  if (s.add_bos && s.bos_id < 0) fail("tokenizer: add_bos is set but there is no bos id");
  if (s.add_eos && s.eos_id < 0) fail("tokenizer: add_eos is set but there is no eos id");
  if (s.normalizer != "" && s.normalizer != "nfc") fail("tokenizer: unsupported normalizer '", s.normalizer, "'");
  if (s.model == "gpt2") {
    pre_tokenizer_from_name(s.pre);
  } else if (!s.merges.empty()) {
    fail("tokenizer: merges given for a 'llama' (scored) vocabulary");
  }
  // Merges are checked against the vocabulary when the BPE tokenizer indexes them.
}

std::unique_ptr<Tokenizer> make_tokenizer(TokenizerSpec spec) {
  validate_tokenizer_spec(spec);
  if (spec.model == "gpt2") return std::make_unique<BpeTokenizer>(std::move(spec));
  return std::make_unique<SpmTokenizer>(std::move(spec));
}

}  // namespace mf
