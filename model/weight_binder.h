// Binds named tensors from any source to the model's logical weights, checking every
// shape once at load time. Formats only provide a name -> TensorView lookup.
#pragma once
#include <functional>
#include <string>

#include "model/model.h"

namespace mf {

// Returns the tensor of that name, or a view with data == nullptr if absent.
using TensorLookup = std::function<TensorView(const std::string& name)>;

// Fills model.w from `lookup` using the GGUF (use_gguf_names) or HF names of arch.h.
// Norms and biases are converted to f32 (owned by model.storage). `label` prefixes errors.
void bind_weights(Model& model, const TensorLookup& lookup, bool use_gguf_names, const std::string& label);

// The MoDE gates (model.mode_gates.B.weight / .bias, GGUF mode_gate.B.weight / .bias) when
// model.mode is enabled.
void bind_mode_gates(Model& model, const TensorLookup& lookup, bool use_gguf_names, const std::string& label);

// A copy of `v` converted to f32, owned by model.storage.
TensorView to_f32(Model& model, const TensorView& v);

}  // namespace mf
