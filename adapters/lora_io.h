// Reading and writing LoRA adapters in the formats people have:
// - PEFT directories: adapter_config.json + adapter_model.safetensors (Hugging Face names,
//   A [r, n_in] as lora_A, B [n_out, r] as lora_B, scale lora_alpha / r or / sqrt(r));
// - llama.cpp GGUF adapters (general.type "adapter", adapter.type "lora", tensors
//   blk.N.<weight>.lora_a / .lora_b, scale adapter.lora.alpha / r), read and written.
#pragma once
#include <string>

#include "adapters/lora_adapter.h"

namespace mf {

// Reads an adapter (a PEFT directory, its adapter_config.json, or a GGUF file) and binds it to
// the model (bind_lora). name: its name in a library ("" -> the directory or file stem).
// Throws mf::Error naming the file and the problem (a missing file, a format other than LoRA,
// an unknown target module, a rank mismatch between A and B, shapes of another base).
LoraAdapter load_lora(const std::string& path, const Model& model, const std::string& name = "");

LoraAdapter read_peft_lora(const std::string& dir, const std::string& arch);
LoraAdapter read_gguf_lora(const std::string& path);

// Writes a PEFT directory (created if missing; each file written to a temporary and renamed),
// f32 factors in Hugging Face's q/k row order. head_dim: to undo a GGUF llama pairing.
void write_peft_lora(const std::string& dir, const LoraAdapter& adapter, int head_dim);

// Writes a llama.cpp GGUF LoRA (f32 factors, q/k rows of B in GGUF's pairing for the arch;
// a module whose scale differs from alpha / r has it folded into B, since the format has one
// alpha). head_dim: to re-pair q/k rows. Written to a temporary and renamed.
void write_gguf_lora(const std::string& path, const LoraAdapter& adapter, int head_dim);

}  // namespace mf
