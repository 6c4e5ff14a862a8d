// LoRA fine-tuning in the trainer: a frozen pretrained base (a Hugging Face Llama directory)
// with PEFT-style low-rank updates on chosen maps, exported as a PEFT directory that PEFT and
// the engine (--lora) load.
#pragma once
#include <string>

#include "train/llama_torch.h"
#include "train/train_config.h"

namespace mf {

// The base's shape from its config.json (llama-architecture keys), keeping cfg's other fields.
// Throws mf::Error naming the file and the key.
TrainModelConfig model_config_from_hf(const std::string& dir, int64_t* n_vocab);

// Copies every parameter of the model from the directory's safetensors (all must be there,
// same shapes; mf::Error names the tensor otherwise).
void load_base_weights(LlamaLM& model, const std::string& dir);

// Freezes every parameter, then attaches LoRA pairs to the configured maps of every layer: A
// drawn as torch.nn.Linear draws it (PEFT's default), B zero, so training starts at the base.
// Returns the trainable parameters (the A and B weights).
std::vector<torch::Tensor> attach_lora(LlamaLM& model, const TrainLoraConfig& cfg, uint64_t seed);

// PHATGOOSE's second stage: attach_lora with the trained adapter's rank, alpha and targets
// (from its adapter_config.json), load its factors and freeze them, and add a zero gate vector
// per adapted map. Returns the gates (the trainable parameters).
std::vector<torch::Tensor> attach_gated_lora(LlamaLM& model, TrainLoraConfig& cfg, uint64_t seed);

// Writes OUT/adapter_config.json and OUT/adapter_model.safetensors (f32, PEFT names), and with
// gates OUT/gates.safetensors (each map's lora_gate [n_in]).
void export_peft(LlamaLM& model, const TrainLoraConfig& cfg, const std::string& out_dir);

}  // namespace mf
