#include "tools/common.h"


#include <filesystem>

#include "core/error.h"
#include "formats/atomic_file.h"
#include "tools/model_registry.h"

namespace mf::cli {

void add_model_options(CLI::App* cmd, ModelOptions& o) {
  cmd->add_option("-m,--model", o.model,
                  "Model: Hugging Face directory, .gguf file, llama2.c .bin, or the name of a pulled model "
                  "(moeforge pull --list)")
      ->required();
  cmd->add_option("--tokenizer", o.tokenizer, "Tokenizer file overriding the one found beside the model");
  cmd->add_option("-t,--threads", o.threads, "Worker threads (default: all cores)")->check(CLI::NonNegativeNumber);
}

std::string resolve_model_path(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::exists(path, ec)) return path;
  const RegistryModel* m = find_registry_model(path);
  if (!m) return path;  // the loader names the missing file
  const std::string cached = cached_model_path(*m);
  if (!std::filesystem::exists(cached, ec)) fail(path, ": not downloaded yet; run `moeforge pull ", path, "`");
  return cached;
}

std::unique_ptr<Model> load(const ModelOptions& o) {
  LoadOptions lo;
  lo.tokenizer_path = o.tokenizer;
  return load_model(resolve_model_path(o.model), lo);
}

void write_text_atomic(const std::string& path, const std::string& text) {
  AtomicFile f(path);
  f.write(text.data(), text.size());
  f.commit();
}

}  // namespace mf::cli
