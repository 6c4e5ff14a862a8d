// Trains a byte-level BPE vocabulary (Hugging Face tokenizers' BpeTrainer semantics:
// byte alphabet, merges chosen by highest pair frequency over pre-tokenized words) and
// writes it as tokenizer.json + tokenizer_config.json.
#pragma once
#include <functional>
#include <unordered_map>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace mf {

struct BpeTrainerOptions {
  int vocab_size = 8192;                            // specials + 256 bytes + merges
  std::string pre = "qwen2";                        // pre-tokenizer (llama.cpp naming); qwen2 splits digits singly
  std::vector<std::string> special_tokens = {"<|endoftext|>"};  // ids 0.. ; the first is BOS/EOS
  int64_t min_frequency = 2;                        // stop when the best pair is rarer
};

// Counts pre-tokenized words of one text; call for every document, then train.
class BpeTrainer {
 public:
  explicit BpeTrainer(BpeTrainerOptions opts);
  void add_text(std::string_view text);
  // on_progress(merges_done, merges_wanted)
  TokenizerSpec train(const std::function<void(int, int)>& on_progress = {});

 private:
  BpeTrainerOptions opts_;
  std::vector<std::pair<size_t, size_t>> spans_;
  std::unordered_map<std::string, int64_t> word_counts_;
};

// Writes `spec` (a gpt2-model spec) as a Hugging Face tokenizer.json and, beside it,
// tokenizer_config.json; both via a temporary file and rename.
void write_hf_tokenizer(const TokenizerSpec& spec, const std::string& dir);

}  // namespace mf
