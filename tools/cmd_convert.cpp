// moeforge convert: any supported model to a llama.cpp-compatible GGUF.
#include <cstdio>

#include "core/error.h"
#include "tools/commands.h"
#include "tools/common.h"

namespace mf::cli {

namespace {

struct ConvertOptions {
  std::string in, out, type = "f16", tokenizer;
};

void run_convert(const ConvertOptions& o) {
  check_export_type(o.type);  // before a long load
  LoadOptions lo;
  lo.tokenizer_path = o.tokenizer;
  auto m = load_model(resolve_model_path(o.in), lo);
  export_gguf_typed(*m, o.out, o.type);
  std::fprintf(stderr, "wrote %s (%s, %lld parameters)\n", o.out.c_str(), o.type.c_str(), (long long)m->n_params());
}

}  // namespace

void add_convert(CLI::App& app) {
  auto o = std::make_shared<ConvertOptions>();
  CLI::App* cmd = app.add_subcommand("convert", "Convert a model to GGUF (loads in llama.cpp)");
  cmd->add_option("input", o->in, "Model: Hugging Face directory, .gguf file or llama2.c .bin")->required();
  cmd->add_option("output", o->out, "Output .gguf path (written via a temporary file)")->required();
  cmd->add_option("--type", o->type, kExportTypeHelp);
  cmd->add_option("--tokenizer", o->tokenizer, "Tokenizer file overriding the one found beside the model");
  cmd->callback([o] { run_convert(*o); });
}

}  // namespace mf::cli
