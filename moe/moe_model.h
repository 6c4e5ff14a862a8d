// A carved Mixture-of-Experts: the dense model, its domain experts and the router, stored
// in one GGUF-based .moe file (a llama.cpp-loadable dense model plus moe.* tensors and
// moeforge.moe.* metadata).
#pragma once
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "formats/gguf.h"
#include "moe/expert_builder.h"
#include "moe/router.h"

namespace mf {

struct MoeInfo {
  static constexpr int kVersion = 3;  // 2: the router lists its embedding layers; 3: its hidden layer
  std::string mode;               // neurons | dowp
  double density = 0;
  double shared_fraction = 0;
  std::string source_fingerprint;  // of the dense model the stats were computed on
  int reroute_every = 0;           // generated tokens between re-routing (0: route once per prompt)
};

// The decision for one prompt, resolved to an expert (or the dense model).
struct Routing {
  RouteDecision decision;
  int expert = -1;             // index into experts(); -1: dense
  std::string domain;          // name of the routed domain ("" when none)
  std::string expert_name;     // "code/1" or "dense"
  bool forced = false;         // chosen by the caller, not the router
};

class MoeModel {
 public:
  // Writes model + experts + router atomically; the dense weights keep their dtype.
  static void write(const Model& model, const Router& router, const std::vector<Expert>& experts, const MoeInfo& info,
                    const std::string& path);
  // Throws mf::Error naming the file when it is not a valid .moe.
  static std::unique_ptr<MoeModel> load(const std::string& path);
  static bool is_moe_file(const std::string& path);

  const Model& model() const { return *model_; }
  const Router& router() const { return router_; }
  const MoeInfo& info() const { return info_; }
  const std::vector<Expert>& experts() const { return experts_; }
  int find_expert(int domain, int subdomain) const;

  // Routes a prompt (its embedding at the router's layer, then the multi-level decision).
  Routing route(std::span<const int32_t> tokens, ThreadPool& pool) const;
  // A caller's choice: "dense", a domain name (its router-chosen sub-domain when tokens are
  // given, else sub-domain 0) or an expert name "domain/k". Throws mf::Error listing the choices.
  Routing force(const std::string& choice, std::span<const int32_t> tokens, ThreadPool& pool) const;
  // Layers to run for a routing (nullptr: dense).
  const std::vector<LayerWeights>* layers(const Routing& r) const;
  std::string choices() const;  // "dense, code, code/0, ..."

  int64_t expert_bytes() const;  // bytes of all experts' FFN weights
  int64_t dense_bytes() const;   // bytes of the dense model's weights

 private:
  std::unique_ptr<Model> model_;
  std::unique_ptr<GgufFile> file_;
  Router router_;
  MoeInfo info_;
  std::vector<Expert> experts_;
};

}  // namespace mf
