// A library of LoRA adapters for one base model, and RoutedLora: the LinearAdapter a Session
// slot runs, applying the library through a router. Per token and per map only the chosen
// adapters' A and B products are computed; nothing is merged into the base weights.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "adapters/lora_adapter.h"
#include "adapters/lora_router.h"
#include "model/session.h"

namespace mf {

struct LoraLibrary {
  std::vector<LoraAdapter> adapters;
  int find(const std::string& name) const;  // -1 if absent
  std::string names() const;                 // "a, b, c" for messages
  size_t n_bytes() const;
};

// Reads adapters (PEFT directories or GGUF files) into a library for the model. Each spec is
// PATH or NAME=PATH. Throws mf::Error on an empty list, a repeated name or a bad adapter.
LoraLibrary load_lora_library(const std::vector<std::string>& specs, const Model& model);

// A router from a user's choice: "arrow" (top_k of the library per token and map), "uniform"
// (all adapters, 1/N each), "NAME", or a list "NAME[:WEIGHT],NAME[:WEIGHT]" (equal weights
// summing to 1 unless given). Throws mf::Error naming an unknown adapter.
std::shared_ptr<LoraRouter> make_lora_router(const LoraLibrary& library, const std::string& spec, int top_k);

// How one slot or request used the library: per adapter, the (token, map) updates that chose
// it and their summed routing weight.
struct LoraUsage {
  std::vector<int64_t> picks;  // [n_adapter]
  std::vector<double> weight;  // [n_adapter]
  int64_t updates = 0;         // (token, map) pairs routed
};

class RoutedLora : public LinearAdapter {
 public:
  RoutedLora(std::shared_ptr<const LoraLibrary> library, std::shared_ptr<const LoraRouter> router);
  void apply(int il, TensorRole role, const float* x, int64_t n, int64_t n_in, float* y, int64_t n_out,
             ThreadPool& pool) override;
  const LoraLibrary& library() const { return *lib_; }
  const LoraRouter& router() const { return *router_; }
  const LoraUsage& usage() const { return usage_; }
  void reset_usage();

 private:
  std::shared_ptr<const LoraLibrary> lib_;
  std::shared_ptr<const LoraRouter> router_;
  std::vector<LoraTerm> terms_;
  std::vector<LoraFactors> factors_;
  LoraUsage usage_;
};

}  // namespace mf
