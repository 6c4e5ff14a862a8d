// moeforge route: the router's decision for a prompt: a carved .moe's domain router, or a
// token-routed MoE's experts per token and layer with its routing statistics.
#include <algorithm>
#include <cstdio>

#include "core/error.h"
#include "model/routing_report.h"
#include "model/session.h"
#include "tools/commands.h"
#include "tools/common.h"
#include "tools/moe_cli.h"

namespace mf::cli {

namespace {

struct RouteOptions {
  std::string moe, prompt, file;
  ModelOptions model;  // a token-routed MoE checkpoint (instead of --moe)
  bool json = false;
};

// A token-routed MoE: per token, each MoE layer's chosen experts and weights; per layer, the
// statistics over the prompt.
void run_token_route(const RouteOptions& o, const std::string& text) {
  auto m = load(o.model);
  if (m->hp.n_expert == 0) fail(o.model.model, ": a dense model has no token routing (route --moe takes a carved .moe)");
  const Tokenizer& tok = m->require_tokenizer();
  std::vector<int32_t> tokens = tok.encode(text, /*add_special=*/true);
  if (tokens.empty()) fail("the prompt has no tokens");
  ThreadPool pool(o.model.threads);
  Session s(*m, int(tokens.size()), pool);
  // per_token[t][layer] = [[expert, weight], ...] in the router's order of preference
  std::vector<nlohmann::json> per_token(tokens.size(), nlohmann::json::object());
  s.set_hook([&](const HookEvent& e) {
    if (e.name != "moe_weights") return;
    for (int64_t t = 0; t < e.n_tokens; ++t) {
      std::vector<std::pair<float, int>> chosen;
      for (int64_t x = 0; x < e.width; ++x)
        if (e.data[t * e.width + x] != 0.0f) chosen.push_back({e.data[t * e.width + x], int(x)});
      std::sort(chosen.begin(), chosen.end(), [](auto& a, auto& b) { return a.first > b.first; });
      nlohmann::json list = nlohmann::json::array();
      for (auto [w, x] : chosen) list.push_back({x, w});
      per_token[size_t(t)][std::to_string(e.layer)] = list;
    }
  });
  s.eval(tokens, false);
  if (o.json) {
    nlohmann::json toks = nlohmann::json::array();
    for (size_t t = 0; t < tokens.size(); ++t)
      toks.push_back({{"id", tokens[t]}, {"piece", tok.token_to_piece(tokens[t])}, {"experts", per_token[t]}});
    nlohmann::json j = {{"model", o.model.model},
                        {"routing", routing_params_json(s.routing())},
                        {"stats", routing_stats_json(s.routing_stats())},
                        {"tokens", toks}};
    std::printf("%s\n", dump_json(j).c_str());
    return;
  }
  std::printf("%zu tokens, %d experts, mean experts per token %.2f\n", tokens.size(), m->hp.n_expert,
              mean_experts_used(s.routing_stats()));
  for (size_t il = 0; il < s.routing_stats().size(); ++il) {
    const LayerRoutingStats& st = s.routing_stats()[il];
    if (st.n_tokens == 0) continue;
    std::printf("layer %2zu  experts/token %.2f  imbalance %.2f  entropy %.3f  tokens per expert", il,
                st.mean_experts_used(), st.load_imbalance(), st.mean_entropy());
    for (int64_t c : st.tokens_per_expert) std::printf(" %lld", (long long)c);
    std::printf("\n");
  }
}

void run_route(const RouteOptions& o) {
  if (o.prompt.empty() == o.file.empty()) fail("give exactly one of --prompt and --file");
  if (o.moe.empty() == o.model.model.empty()) fail("give exactly one of --moe (a carved .moe) and --model (a token-routed MoE)");
  if (!o.model.model.empty()) return run_token_route(o, o.file.empty() ? o.prompt : read_text_file(o.file));
  if (!MoeModel::is_moe_file(o.moe)) fail(o.moe, ": not a .moe file (build one with moeforge build-moe)");
  LoadedModel lm;
  lm.moe = MoeModel::load(o.moe);
  std::string text = o.file.empty() ? o.prompt : read_text_file(o.file);
  std::vector<int32_t> tokens = lm.model().require_tokenizer().encode(text, /*add_special=*/false);
  if (tokens.empty()) fail("the prompt has no tokens");
  ThreadPool pool(o.model.threads);
  Routing r = lm.moe->route(tokens, pool);
  nlohmann::json j = routing_json(lm, r);
  j["subdomain"] = r.decision.subdomain;
  if (o.json) {
    std::printf("%s\n", dump_json(j).c_str());
  } else {
    std::printf("domain %s  subdomain %d  confidence %.4f  expert %s\n", r.domain.c_str(), r.decision.subdomain,
                r.decision.confidence, r.expert_name.c_str());
  }
}

}  // namespace

void add_route(CLI::App& app) {
  auto o = std::make_shared<RouteOptions>();
  CLI::App* cmd = app.add_subcommand(
      "route",
      "Show routing for a prompt: a carved .moe's router decision (domain, sub-domain, confidence), or a "
      "token-routed MoE's experts per token and layer with load imbalance, entropy and experts per token");
  cmd->add_option("--moe", o->moe, "Carved .moe file (moeforge build-moe)");
  add_model_options(cmd, o->model);
  cmd->get_option("--model")->required(false);
  cmd->add_option("-p,--prompt", o->prompt, "Prompt text");
  cmd->add_option("-f,--file", o->file, "Read the prompt from a UTF-8 file");
  cmd->add_flag("--json", o->json,
                "Print JSON: {\"domain\", \"subdomain\", \"confidence\", ...} for --moe; {\"routing\", \"stats\", "
                "\"tokens\": [{\"id\", \"piece\", \"experts\": {layer: [[expert, weight], ...]}}]} for --model");
  cmd->callback([o] { run_route(*o); });
}

}  // namespace mf::cli
