// The routing seam between the server and a Mixture-of-Experts runtime: the server asks a
// RouteFn which weights a prompt runs with and reports the decision to the client.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include "model/model.h"
#include "model/session.h"

namespace mf::serve {

// One routing decision for a prompt.
struct RouteInfo {
  std::string domain;     // e.g. "code"; "dense" when the dense model runs
  std::string subdomain;  // e.g. a cluster name inside the domain; "" when none
  double confidence = 1.0;  // router's probability of the chosen domain (1 when forced)
  double density = 1.0;     // fraction of the dense FFN neurons the expert keeps
  // Layers the sequence runs with (same shapes as the model's, FFN possibly narrower), or
  // nullptr for the dense model. Must stay valid while the server runs.
  const std::vector<LayerWeights>* layers = nullptr;
  bool forced = false;  // the request chose the expert (set by the server)
  // Name of the weights that run, e.g. "code/1" or "dense" (a router may report a domain yet
  // fall back to the dense model when unsure); "" derives it from domain and subdomain.
  std::string expert_name;
  // MoDE models: what the sequence runs (kModeGated, kModeBackbone or an expert's index), or
  // unset for other models.
  std::optional<int> mode_expert;

  // The expert's name in responses and metrics: expert_name, else "domain" or "domain/subdomain".
  std::string expert() const {
    if (!expert_name.empty()) return expert_name;
    return subdomain.empty() ? domain : domain + "/" + subdomain;
  }
};

// forced: "" for automatic routing, "dense" for the dense model, or an expert name the
// router knows (a domain, or "domain/subdomain"). Throws mf::Error for an unknown name (the
// server answers 400). Called from HTTP handler threads, one call at a time, while the
// scheduler runs batches: a router that runs the model must use its own ThreadPool (a pool
// serves one calling thread at a time).
using RouteFn = std::function<RouteInfo(std::span<const int32_t> prompt_tokens, const std::string& forced)>;

struct Router {
  RouteFn route;                      // empty: no routing (a dense model)
  std::vector<std::string> experts;   // names a request may force, listed in /v1/models
  explicit operator bool() const { return bool(route); }
};

// The LoRA seam: a library of adapters the requests choose from ("moeforge": {"adapters": ...}).
// make(spec, prompt) gives a fresh per-request update for a spec: an adapter name, a list "a,b"
// or "a:0.7,b:0.3", "uniform", "auto" (routed per token), "glider" or "global" (routed with the
// prompt's prior); it throws mf::Error naming an unknown adapter (the server answers 400).
// report() describes how a finished request used it.
// Called from HTTP handler threads, one at a time (the server serialises them).
struct AdapterLibrary {
  std::function<std::shared_ptr<LinearAdapter>(const std::string& spec, std::span<const int32_t> prompt)> make;
  std::function<nlohmann::json(const LinearAdapter&)> report;
  std::vector<std::string> names;  // listed in /v1/models
  std::string default_spec;        // for requests that name none ("": the base model)
  explicit operator bool() const { return bool(make); }
};

}  // namespace mf::serve
