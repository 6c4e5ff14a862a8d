#include "tools/common.h"


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

}  // namespace mf::cli
