// Writes a loaded dense Llama-architecture model as a Hugging Face directory (config.json,
// model.safetensors in f32, tokenizer.json + tokenizer_config.json), so that a GGUF checkpoint
// (SmolLM2's Q4_1, ...) can be the base of a LoRA or MoDE training run, which reads Hugging
// Face directories only.
#pragma once
#include <string>

#include "model/model.h"

namespace mf {

// Quantised matrices are dequantised to f32; q/k rows go back to the rotate_half pairing. The
// directory is written beside its final name and renamed into place. Throws mf::Error for a
// model it cannot express (another architecture, biases, MoE or MoDE layers, llama3 RoPE
// scaling, a tokenizer that is not byte-level BPE) and when `dir` already exists.
void export_hf_dir(const Model& model, const std::string& dir);

}  // namespace mf
