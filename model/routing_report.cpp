#include "model/routing_report.h"

namespace mf {

nlohmann::json routing_params_json(const RouteParams& p) {
  nlohmann::json j = {{"n_expert", p.n_expert}, {"renormalize", p.renormalize}};
  if (p.weight_scale != 1.0f) j["weight_scale"] = p.weight_scale;
  if (p.top_p > 0) {
    j["top_p"] = p.top_p;
    j["min_experts"] = p.min_experts;
    j["max_experts"] = p.max_experts > 0 ? p.max_experts : p.n_expert;
  } else {
    j["top_k"] = p.top_k;
  }
  return j;
}

double mean_experts_used(const std::vector<LayerRoutingStats>& layers) {
  double sum = 0;
  int n = 0;
  for (const LayerRoutingStats& s : layers)
    if (s.n_tokens > 0) sum += s.mean_experts_used(), ++n;
  return n ? sum / n : 0.0;
}

nlohmann::json routing_stats_json(const std::vector<LayerRoutingStats>& layers) {
  nlohmann::json per = nlohmann::json::array();
  double imbalance = 0;
  int n = 0;
  for (size_t il = 0; il < layers.size(); ++il) {
    const LayerRoutingStats& s = layers[il];
    if (s.n_tokens == 0) continue;
    per.push_back({{"layer", il},
                   {"tokens", s.n_tokens},
                   {"tokens_per_expert", s.tokens_per_expert},
                   {"load_imbalance", s.load_imbalance()},
                   {"mean_entropy", s.mean_entropy()},
                   {"mean_experts_used", s.mean_experts_used()}});
    imbalance += s.load_imbalance();
    ++n;
  }
  return {{"mean_experts_used", mean_experts_used(layers)}, {"mean_load_imbalance", n ? imbalance / n : 0.0}, {"layers", per}};
}

}  // namespace mf
