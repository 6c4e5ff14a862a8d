// A library of LoRA adapters for one base model, and RoutedLora: the LinearAdapter a Session
// slot runs, applying the library through a router. Per token and per map only the chosen
// adapters' A and B products are computed; nothing is merged into the base weights.
#pragma once
#include <array>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "adapters/lora_adapter.h"
#include "adapters/lora_router.h"
#include "model/session.h"

namespace mf {

struct GlobalIndex;  // adapters/glider.h

struct LoraLibrary {
  std::vector<LoraAdapter> adapters;
  int find(const std::string& name) const;  // -1 if absent
  std::string names() const;                 // "a, b, c" for messages
  size_t n_bytes() const;
};

// Reads adapters (PEFT directories or GGUF files) into a library for the model. Each spec is
// PATH or NAME=PATH. f16: the forward reads f16 copies of the factors (set_lora_f16). Throws
// mf::Error on an empty list, a repeated name or a bad adapter.
LoraLibrary load_lora_library(const std::vector<std::string>& specs, const Model& model, bool f16 = false);

// A router from a user's choice: "arrow" (top_k of the library per token and map), "glider"
// (arrow plus each sequence's prior from the global router), "global" (the prior's top_k for
// every token), "uniform" (all adapters, 1/N each), "NAME", or a list "NAME[:WEIGHT],NAME[:WEIGHT]"
// (equal weights summing to 1 unless given), "gates" (PHATGOOSE's learned gates, top_k),
// "glider-gates" (the gates plus the sequence's prior).
// Throws mf::Error naming an unknown adapter.
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
  // Many rows (prefill): per map, route all rows, then a row-parallel update. Fewer rows than
  // threads (decode): one parallel pass over the maps' concatenated output columns, each thread
  // routing and projecting what its columns need (repeating the small A x products) so that a
  // layer's q/k/v or gate/up updates cost one thread hand-off.
  void apply(int il, std::span<const AdaptedMap> maps, const float* x, int64_t n, int64_t n_in,
             ThreadPool& pool) override;
  const LoraLibrary& library() const { return *lib_; }
  const LoraRouter& router() const { return *router_; }
  const std::shared_ptr<const LoraLibrary>& shared_library() const { return lib_; }
  const std::shared_ptr<const LoraRouter>& shared_router() const { return router_; }
  const LoraUsage& usage() const { return usage_; }
  void reset_usage();
  // The sequence's prior for glider / global routing: bias[a] = alpha * log p(a) [n_adapter];
  // empty: none (glider then routes as arrow, global applies no adapter).
  void set_prior(std::vector<float> bias) { bias_ = std::move(bias); }
  const std::vector<float>& prior() const { return bias_; }
  // The description embeddings a sequence's prior comes from (glider / global routing).
  void set_global_index(std::shared_ptr<const GlobalIndex> index) { index_ = std::move(index); }
  const std::shared_ptr<const GlobalIndex>& global_index() const { return index_; }

 private:
  std::shared_ptr<const LoraLibrary> lib_;
  std::shared_ptr<const LoraRouter> router_;
  struct Scratch {  // one per pool thread
    std::vector<LoraTerm> terms;
    std::vector<float> scores, t;
    LoraUsage usage;
  };
  // The factors of map `target` in layer il of each adapter (null where absent); false if none.
  bool gather(int il, int target, int64_t n_in, int64_t n_out, std::vector<LoraFactors>& factors) const;
  // Drops terms of adapters without the map, scales by the adapters' alpha / r, counts usage.
  void finish_terms(int il, int target, const std::vector<LoraFactors>& factors, std::vector<LoraTerm>& terms,
                    LoraUsage* usage) const;
  std::array<std::vector<LoraFactors>, 4> factors_;  // per map of a call
  std::vector<Scratch> scratch_;
  LoraUsage usage_;
  std::vector<float> bias_;
  std::shared_ptr<const GlobalIndex> index_;
  const float* bias() const { return bias_.empty() ? nullptr : bias_.data(); }
};

// {"route", "adapters": [{"name", "rank", "bytes", "picks", "share"}], "bytes"}: the library and how
// this update used it (share: the mean routing weight per routed (token, map); used_only: only
// the adapters that were picked).
nlohmann::json lora_report(const RoutedLora& lora, bool used_only = false);

}  // namespace mf
