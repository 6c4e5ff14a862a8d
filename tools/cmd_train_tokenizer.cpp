// moeforge train-tokenizer: a byte-level BPE vocabulary from text files, written as a
// Hugging Face tokenizer.json + tokenizer_config.json.
#include <cstdio>
#include <filesystem>

#include "core/error.h"
#include "tokenizer/bpe_trainer.h"
#include "tools/commands.h"
#include "tools/common.h"
#include "tools/progress.h"

namespace mf::cli {

namespace {

struct TrainTokenizerOptions {
  std::vector<std::string> files;
  std::string out;
  BpeTrainerOptions bpe;
};

// Documents are separated by blank lines; counting words per paragraph keeps memory flat.
void add_file(BpeTrainer& trainer, const std::string& path) {
  std::string text = read_text_file(path);
  trainer.add_text(text);
}

void run_train_tokenizer(const TrainTokenizerOptions& o) {
  BpeTrainer trainer(o.bpe);
  Progress read("reading", int64_t(o.files.size()));
  for (size_t i = 0; i < o.files.size(); ++i) {
    add_file(trainer, o.files[i]);
    read.update(int64_t(i + 1));
  }
  read.finish();
  Progress merging("merges", o.bpe.vocab_size);
  TokenizerSpec spec = trainer.train([&](int done, int total) { merging.update(done, ""); });
  merging.finish();
  std::filesystem::create_directories(o.out);
  write_hf_tokenizer(spec, o.out);
  std::fprintf(stderr, "wrote %s/tokenizer.json (%zu tokens, %zu merges)\n", o.out.c_str(), spec.tokens.size(),
               spec.merges.size());
}

}  // namespace

void add_train_tokenizer(CLI::App& app) {
  auto o = std::make_shared<TrainTokenizerOptions>();
  CLI::App* cmd = app.add_subcommand("train-tokenizer", "Train a byte-level BPE tokenizer (writes tokenizer.json)");
  cmd->add_option("files", o->files, "UTF-8 training text files")->required()->check(CLI::ExistingFile);
  cmd->add_option("-o,--out", o->out, "Output directory")->required();
  cmd->add_option("--vocab-size", o->bpe.vocab_size, "Vocabulary size including bytes and special tokens");
  cmd->add_option("--pre", o->bpe.pre, "Pre-tokenizer: qwen2 (default, single digits), llama-bpe, gpt-2");
  cmd->add_option("--min-frequency", o->bpe.min_frequency, "Stop merging when the best pair is rarer");
  cmd->callback([o] { run_train_tokenizer(*o); });
}

}  // namespace mf::cli
