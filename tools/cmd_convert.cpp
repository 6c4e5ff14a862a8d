// moeforge convert: any supported model to a llama.cpp-compatible GGUF.
#include <cstdio>
#include <filesystem>

#include "core/error.h"
#include "model/hf_export.h"
#include "tools/commands.h"
#include "tools/common.h"

namespace mf::cli {

namespace {

struct ConvertOptions {
  std::string in, out, type = "f16", tokenizer, format = "gguf";
  bool type_given = false;
};

void run_convert(const ConvertOptions& o) {
  const bool hf = o.format == "hf";
  if (hf && o.type_given) fail("--type applies to GGUF output; --format hf writes f32");
  if (hf && std::filesystem::exists(o.out)) fail(o.out, ": already exists");
  if (!hf) check_export_type(o.type);  // before a long load
  LoadOptions lo;
  lo.tokenizer_path = o.tokenizer;
  auto m = load_model(resolve_model_path(o.in), lo);
  if (hf) {
    export_hf_dir(*m, o.out);
    std::fprintf(stderr, "wrote %s (Hugging Face, f32, %lld parameters)\n", o.out.c_str(), (long long)m->n_params());
    return;
  }
  export_gguf_typed(*m, o.out, o.type);
  std::fprintf(stderr, "wrote %s (%s, %lld parameters)\n", o.out.c_str(), o.type.c_str(), (long long)m->n_params());
}

}  // namespace

void add_convert(CLI::App& app) {
  auto o = std::make_shared<ConvertOptions>();
  CLI::App* cmd = app.add_subcommand("convert",
                                     "Convert a model to GGUF (loads in llama.cpp), or with --format hf a dense Llama model to a\n"
                                     "Hugging Face directory in f32 (a base for LoRA and MoDE training)");
  cmd->add_option("input", o->in, "Model: Hugging Face directory, .gguf file or llama2.c .bin")->required();
  cmd->add_option("output", o->out, "Output .gguf path, or the directory for --format hf (written via a temporary)")->required();
  cmd->add_option("--type", o->type, kExportTypeHelp)->each([o](const std::string&) { o->type_given = true; });
  cmd->add_option("--format", o->format, "gguf (default) or hf")->check(CLI::IsMember({"gguf", "hf"}));
  cmd->add_option("--tokenizer", o->tokenizer, "Tokenizer file overriding the one found beside the model");
  cmd->callback([o] { run_convert(*o); });
}

}  // namespace mf::cli
