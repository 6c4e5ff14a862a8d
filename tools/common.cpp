#include "tools/common.h"

#include <fstream>
#include <sstream>

#include "core/error.h"

namespace mf::cli {

void add_model_options(CLI::App* cmd, ModelOptions& o) {
  cmd->add_option("-m,--model", o.model, "Model: Hugging Face directory, .gguf file or llama2.c .bin")->required();
  cmd->add_option("--tokenizer", o.tokenizer, "Tokenizer file overriding the one found beside the model");
  cmd->add_option("-t,--threads", o.threads, "Worker threads (default: all cores)")->check(CLI::NonNegativeNumber);
}

std::unique_ptr<Model> load(const ModelOptions& o) {
  LoadOptions lo;
  lo.tokenizer_path = o.tokenizer;
  return load_model(o.model, lo);
}

namespace {

bool valid_utf8(const std::string& s) {
  size_t i = 0, n = s.size();
  while (i < n) {
    unsigned char c = s[i];
    int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (!len || i + len > n) return false;
    for (int k = 1; k < len; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    i += len;
  }
  return true;
}

}  // namespace

std::string read_text_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(path, ": cannot open");
  std::stringstream ss;
  ss << f.rdbuf();
  std::string s = ss.str();
  if (s.empty()) fail(path, ": file is empty");
  if (!valid_utf8(s)) fail(path, ": not valid UTF-8 text");
  return s;
}

}  // namespace mf::cli
