// moeforge convert: any supported model to a llama.cpp-compatible GGUF.
#include <cstdio>

#include "core/error.h"
#include "model/gguf_export.h"
#include "tools/commands.h"
#include "tools/common.h"

namespace mf::cli {

namespace {

struct ConvertOptions {
  std::string in, out, type = "f16", tokenizer;
};

constexpr DType kUniformTypes[] = {DType::F32, DType::BF16, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1};

void run_convert(const ConvertOptions& o) {
  // llama.cpp's presets (q4_K_M, q5_K_M, q6_K, q8_0, f16) or one type for every matrix.
  bool preset = false;
  for (const std::string& p : preset_names()) preset = preset || p == o.type;
  DType uniform = DType::F32;
  bool known = preset;
  for (DType t : kUniformTypes)
    if (!preset && dtype_name(t) == o.type) uniform = t, known = true;
  if (!known) fail("--type ", o.type, ": expected one of q4_K_M, q5_K_M, q6_K, q8_0, f16, f32, bf16, q4_0, q4_1, q5_0, q5_1");
  LoadOptions lo;
  lo.tokenizer_path = o.tokenizer;
  auto m = load_model(resolve_model_path(o.in), lo);
  if (preset)
    export_gguf(*m, o.out, preset_types(o.type, *m), preset_file_type(o.type));
  else
    export_gguf(*m, o.out, uniform);
  std::fprintf(stderr, "wrote %s (%s, %lld parameters)\n", o.out.c_str(), o.type.c_str(), (long long)m->n_params());
}

}  // namespace

void add_convert(CLI::App& app) {
  auto o = std::make_shared<ConvertOptions>();
  CLI::App* cmd = app.add_subcommand("convert", "Convert a model to GGUF (loads in llama.cpp)");
  cmd->add_option("input", o->in, "Model: Hugging Face directory, .gguf file or llama2.c .bin")->required();
  cmd->add_option("output", o->out, "Output .gguf path (written via a temporary file)")->required();
  cmd->add_option("--type", o->type,
                  "Weight types: llama-quantize's mixes q4_K_M, q5_K_M, q6_K, q8_0, f16 (the same tensor types as\n"
                  "llama.cpp chooses, e.g. q6_K output and some attn_v/ffn_down in q4_K_M; rows that are not a\n"
                  "multiple of 256 fall back to q5_0/q5_1/q8_0), or one type for every matrix: f32, bf16, q4_0,\n"
                  "q4_1, q5_0, q5_1 (default f16)");
  cmd->add_option("--tokenizer", o->tokenizer, "Tokenizer file overriding the one found beside the model");
  cmd->callback([o] { run_convert(*o); });
}

}  // namespace mf::cli
