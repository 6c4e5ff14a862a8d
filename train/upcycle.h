// Sparse upcycling: a MoE model initialised from a dense checkpoint of the same shape.
#pragma once
#include <string>
#include <vector>

#include "train/llama_torch.h"

namespace mf {

// Copies every tensor of the dense Hugging Face directory (model.safetensors, the trainer's
// export or any Llama of this shape) whose name the model shares, and each layer's dense FFN
// (mlp.gate_proj / up_proj / down_proj) into every expert of that layer; the routers and any
// shared expert keep their fresh initialisation. Throws mf::Error naming the file and tensor
// when a shape differs or a tensor is missing.
void upcycle_from_dense(LlamaLM& model, const std::string& dense_dir);

// Branch-Train-Mix: a MoE model from dense copies of one base fine-tuned per domain (one
// directory per expert, in expert order): expert e of each layer takes the FFN of branch e, every
// other shared tensor (attention, norms, embeddings) the mean over the branches; the routers keep
// their fresh initialisation. Throws mf::Error naming the file and tensor on a mismatch, or
// when the count of branches is not the model's n_expert.
void branch_train_mix(LlamaLM& model, const std::vector<std::string>& branch_dirs);

}  // namespace mf
