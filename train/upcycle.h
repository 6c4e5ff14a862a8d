// Sparse upcycling: a MoE model initialised from a dense checkpoint of the same shape.
#pragma once
#include <string>

#include "train/llama_torch.h"

namespace mf {

// Copies every tensor of the dense Hugging Face directory (model.safetensors, the trainer's
// export or any Llama of this shape) whose name the model shares, and each layer's dense FFN
// (mlp.gate_proj / up_proj / down_proj) into every expert of that layer; the routers and any
// shared expert keep their fresh initialisation. Throws mf::Error naming the file and tensor
// when a shape differs or a tensor is missing.
void upcycle_from_dense(LlamaLM& model, const std::string& dense_dir);

}  // namespace mf
