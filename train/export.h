// Writes a trained LlamaLM as a Hugging Face directory the engine and transformers load.
#pragma once
#include <string>

#include "train/llama_torch.h"

namespace mf {

// config.json + model.safetensors (f32) + the tokenizer files found beside tokenizer_json.
// Each file is written via a temporary and rename.
void export_hf(LlamaLM& model, const std::string& tokenizer_json, const std::string& dir);

}  // namespace mf
