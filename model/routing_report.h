// Token-routed MoE routing, reported: the settings and per-layer statistics as JSON, for
// `bench --json`, `route --json` and the server's /metrics.
#pragma once
#include <nlohmann/json.hpp>
#include <vector>

#include "ops/moe_routing.h"

namespace mf {

// {"top_k" | "top_p", "min_experts", "max_experts"}, "renormalize"}.
nlohmann::json routing_params_json(const RouteParams& p);
// {"mean_experts_used", "mean_load_imbalance", "layers": [{"layer", "tokens", "tokens_per_expert",
// "load_imbalance", "mean_entropy", "mean_experts_used"}]} over the MoE layers (dense layers skipped).
nlohmann::json routing_stats_json(const std::vector<LayerRoutingStats>& layers);
// Mean experts per token over the MoE layers (0 when none ran).
double mean_experts_used(const std::vector<LayerRoutingStats>& layers);

}  // namespace mf
