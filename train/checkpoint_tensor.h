// A tensor of a Hugging Face safetensors checkpoint as a torch f32 tensor (upcycling, LoRA
// bases, trained adapters).
#pragma once
#include <torch/torch.h>

#include <string>

#include "formats/safetensors.h"

namespace mf {

// The named tensor of `ck` (read from `dir`, for messages), converted to f32 and shaped like
// `like`. Throws mf::Error "DIR: missing tensor 'NAME' (needed by WHO)" or "DIR: tensor 'NAME'
// has shape S, WHO needs T".
torch::Tensor checkpoint_tensor(const SafetensorsCheckpoint& ck, const std::string& name, const torch::Tensor& like,
                                const std::string& dir, const std::string& who);

}  // namespace mf
