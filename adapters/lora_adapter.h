// A LoRA adapter for a moeforge model: low-rank factors per layer and linear map, checked
// against a base model and laid out for it (q/k rows in the model's RoPE pairing). Readers and
// writers for PEFT directories and llama.cpp GGUF adapters live in lora_io.h.
#pragma once
#include <array>
#include <string>
#include <vector>

#include "model/model.h"
#include "ops/lora.h"

namespace mf {

// The linear maps an adapter may target, in a fixed order (PEFT's q_proj ... down_proj).
inline constexpr int kNumLoraTargets = 7;
inline constexpr std::array<TensorRole, kNumLoraTargets> kLoraTargets = {
    TensorRole::Wq, TensorRole::Wk, TensorRole::Wv, TensorRole::Wo,
    TensorRole::FfnGate, TensorRole::FfnUp, TensorRole::FfnDown};
// Index of `role` in kLoraTargets, -1 if an adapter cannot target it.
int lora_target_index(TensorRole role);
// The module's short name in Hugging Face checkpoints ("q_proj"), from the architecture's name table.
std::string lora_module_name(const std::string& arch, int target);

struct LoraModule {
  int64_t rank = 0, n_in = 0, n_out = 0;
  float scale = 0.0f;     // alpha / rank, or alpha / sqrt(rank) with rsLoRA
  std::vector<float> a;   // [rank, n_in]
  std::vector<float> bt;  // [rank, n_out]: B transposed
  // f16 copies of a and bt that the forward reads instead when present (set_lora_f16).
  std::vector<uint16_t> a16, bt16;
  std::vector<float> gate;  // [n_in] PHATGOOSE gate (gates.safetensors beside a PEFT adapter), or empty
  bool present() const { return rank > 0; }
  LoraFactors factors() const {
    return a16.empty() ? LoraFactors{a.data(), bt.data(), rank, false} : LoraFactors{a16.data(), bt16.data(), rank, true};
  }
};

struct LoraAdapter {
  std::string name;        // its name in a library (the directory or file stem unless given)
  std::string source;      // path it was read from
  std::string format;      // "peft" or "gguf"
  std::string arch;        // architecture whose tensor names it uses
  std::string base_model;  // the base recorded in the file ("" if none)
  std::string description; // its task in words (description.txt beside it), for GLIDER's global router
  int64_t rank = 0;        // the configured rank (modules may differ: PEFT's rank_pattern)
  float alpha = 0.0f;
  bool rslora = false;
  bool qk_neox = true;     // pairing of q/k rows in B: rotate_half (Hugging Face) or interleaved
  std::vector<std::array<LoraModule, kNumLoraTargets>> layers;  // [n_layer]

  // Short names of the targeted modules, in kLoraTargets order.
  std::vector<std::string> target_names() const;
  size_t n_bytes() const;  // memory of the factors the forward reads (f32, or f16 after set_lora_f16)
  int64_t n_params() const;
};

// Checks the adapter against the model and lays it out for it: the layer count, every
// module's shapes against the weight it updates (A [r, n_in], B [n_out, r]), no FFN target in
// a token-routed MoE layer, and q/k rows permuted to the model's RoPE pairing. Throws mf::Error
// naming the adapter, the tensor and both shapes.
void bind_lora(LoraAdapter& adapter, const Model& model);

// A fresh adapter for the model: rank r, alpha, on the targets given by short name ("q_proj",
// ... or "all"). A is drawn as PEFT draws it (Kaiming-uniform, bound 1/sqrt(n_in)); B is zero
// (PEFT's start: a no-op until trained) or, with random_b, uniform in +-1/sqrt(r) (a stand-in of
// a trained adapter's size, for benchmarks and tests). Deterministic in seed.
LoraAdapter init_lora(const Model& model, const std::string& name, int64_t rank, float alpha,
                      const std::vector<std::string>& targets, bool random_b, uint64_t seed);

// Makes the forward read f16 copies of the factors (half the bytes per token; the f32 values stay
// for merging, writing and routing).
void set_lora_f16(LoraAdapter& adapter);

// Adds coef * scale * B A to every weight the adapter targets. The updated weights become f32
// tensors owned by the model (converted from the model's type); the others stay as they were.
void merge_lora(Model& model, const LoraAdapter& adapter, float coef = 1.0f);

}  // namespace mf
