// A model's identity for files derived from it (calibration stats, .moe experts).
#pragma once
#include <cstdint>
#include <string>

#include "model/model.h"

namespace mf {

// 64-bit hash of the hyperparameters and every weight's decoded values, sampled on a fixed
// grid of rows so that it costs milliseconds even for large models. Equal models in different
// files (safetensors f32 vs GGUF f32, q/k rows permuted for GGUF) may differ; stats must be
// used with the exact model file they were computed on.
uint64_t model_fingerprint(const Model& model);
std::string fingerprint_hex(uint64_t h);

}  // namespace mf
