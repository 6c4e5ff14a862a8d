// Writes a loaded model as a llama.cpp-compatible GGUF file.
#pragma once
#include <functional>
#include <string>

#include "core/dtype.h"
#include "formats/gguf.h"
#include "model/model.h"

namespace mf {

// `type` applies to 2-D weight matrices (f32, f16, bf16, q8_0, q4_0); norms and biases stay
// f32; matrices whose rows are not whole quantisation blocks fall back to f16.
// q/k rows are permuted when the source's RoPE pairing differs from GGUF's for the arch.
// `extra` may add metadata and tensors (a .moe file's experts and router) before the write.
using GgufExtra = std::function<void(GgufWriter&)>;
void export_gguf(const Model& model, const std::string& out_path, DType type, const GgufExtra& extra = {});

}  // namespace mf
