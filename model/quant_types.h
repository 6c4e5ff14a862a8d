// Which type each tensor gets when a model is written to GGUF (convert, .moe files): one type
// for every matrix, each tensor's own type kept, or llama.cpp's k-quant mixes (Q4_K_M, ...).
#pragma once
#include <functional>
#include <string>

#include "core/dtype.h"
#include "model/arch.h"
#include "model/model.h"

namespace mf {

// A tensor about to be written.
struct TensorToWrite {
  std::string name;  // GGUF name
  TensorRole role;
  int layer;         // -1 for global tensors
  const TensorView* view;
};
// The type to write a matrix as (1-D tensors are always f32).
using TypePolicy = std::function<DType(const TensorToWrite&)>;

// Every matrix as `t`; rows that are not whole blocks of `t` fall back to f16.
TypePolicy uniform_types(DType t);
// Each matrix keeps its stored type (q2_K/q3_K, which moeforge does not write, become q4_K);
// rows that are not whole blocks fall back as llama.cpp's quantiser does.
TypePolicy keep_types();
// llama.cpp's llama-quantize mixes without an importance matrix: "q4_K_M", "q5_K_M", "q6_K",
// "q8_0", "f16". Throws mf::Error for another name.
TypePolicy preset_types(const std::string& preset, const Model& model);
// The names preset_types accepts, and GGUF's general.file_type of each.
const std::vector<std::string>& preset_names();
uint32_t preset_file_type(const std::string& preset);

// llama.cpp's fallback for k-quant rows that are not a multiple of 256 values: q4_K -> q5_0,
// q5_K -> q5_1, q6_K -> q8_0 (q2_K/q3_K -> q4_0, where llama.cpp uses iq4_nl, which moeforge
// does not write); other types whose block does not divide the row -> f16.
DType fallback_type(DType t, int64_t n_cols);

}  // namespace mf
