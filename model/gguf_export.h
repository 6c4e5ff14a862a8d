// Writes a loaded model as a llama.cpp-compatible GGUF file.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "formats/gguf.h"
#include "model/model.h"
#include "model/quant_types.h"

namespace mf {

// `type` applies to 2-D weight matrices (any type with a quantiser); norms and biases stay
// f32; matrices whose rows are not whole quantisation blocks fall back to f16.
// q/k rows are permuted when the source's RoPE pairing differs from GGUF's for the arch.
// `extra` may add metadata and tensors (a .moe file's experts and router) before the write.
using GgufExtra = std::function<void(GgufWriter&)>;
void export_gguf(const Model& model, const std::string& out_path, DType type, const GgufExtra& extra = {});
// The same with a type per tensor (model/quant_types.h) and GGUF's general.file_type to record.
void export_gguf(const Model& model, const std::string& out_path, const TypePolicy& types, uint32_t file_type,
                 const GgufExtra& extra = {});
// Source row for each destination row when changing the RoPE pairing of q/k rows (weights,
// biases, a LoRA's B): rotate_half keeps pair i as rows (i, i+d/2) of a head, interleaved as (2i, 2i+1).
std::vector<int64_t> rope_row_order(int64_t rows, int head_dim, bool to_interleaved);
// llama_ftype of a model whose matrices are mostly `t` (q4_K -> Q4_K_M, ...).
uint32_t gguf_file_type_of(DType t);

}  // namespace mf
