// Per-format loaders used by load_model() (model/loader.cpp) and convert.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "formats/gguf.h"
#include "model/model.h"

namespace mf {

HParams hparams_from_hf_config(const nlohmann::json& cfg, ArchInfo* arch, const std::string& label);
void load_hf(Model& m, const std::string& dir);
void load_gguf(Model& m, const std::string& path);
void load_llama2c(Model& m, const std::string& path);

// Tokenizer vocabulary as GGUF stores it (tokenizer.ggml.*).
TokenizerSpec tokenizer_spec_from_gguf(const GgufFile& g);
void tokenizer_spec_to_gguf(const TokenizerSpec& spec, GgufWriter& w);

}  // namespace mf
