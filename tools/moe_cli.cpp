#include "tools/moe_cli.h"

#include "core/error.h"

namespace mf::cli {

LoadedModel load_any(const ModelOptions& o) {
  LoadedModel m;
  if (MoeModel::is_moe_file(o.model)) {
    if (!o.tokenizer.empty()) fail("--tokenizer cannot override the tokenizer of a .moe file");
    m.moe = MoeModel::load(o.model);
  } else {
    m.dense = load(o);
  }
  return m;
}

void add_domain_option(CLI::App* cmd, std::string& domain) {
  cmd->add_option("--domain", domain,
                  "MoE models: force an expert instead of routing: a domain name (its sub-domain chosen by\n"
                  "the router), an expert name like code/1, or 'dense'");
}

Routing resolve_routing(const LoadedModel& m, const std::string& domain, std::span<const int32_t> prompt, ThreadPool& pool) {
  if (!m.moe) {
    if (!domain.empty() && domain != "dense") fail("--domain needs a .moe model (build one with moeforge build-moe)");
    Routing r;
    r.expert_name = "dense";
    r.forced = !domain.empty();
    return r;
  }
  return domain.empty() ? m.moe->route(prompt, pool) : m.moe->force(domain, prompt, pool);
}

const std::vector<LayerWeights>* routed_layers(const LoadedModel& m, const Routing& r) {
  return m.moe ? m.moe->layers(r) : nullptr;
}

nlohmann::json routing_json(const LoadedModel& m, const Routing& r) {
  nlohmann::json j = {{"expert", r.expert_name}, {"forced", r.forced}};
  if (!m.moe) return j;
  j["domain"] = r.domain.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.domain);
  j["subdomain"] = r.decision.subdomain;
  j["confidence"] = r.decision.confidence;
  j["dense_fallback"] = !r.forced && r.decision.dense;
  j["density"] = r.expert < 0 ? 1.0 : m.moe->info().density;
  if (!r.decision.probs.empty()) {
    nlohmann::json p;
    for (size_t d = 0; d < r.decision.probs.size(); ++d) p[m.moe->router().domains[d]] = r.decision.probs[d];
    j["probs"] = p;
  }
  return j;
}

}  // namespace mf::cli
