// moeforge perplexity: exp(mean NLL) over consecutive windows of a text file.
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/perplexity.h"
#include "tools/commands.h"
#include "tools/common.h"
#include "tools/moe_cli.h"
#include "tools/progress.h"

namespace mf::cli {

namespace {

struct PerplexityOptions {
  ModelOptions model;
  std::string file;
  int n_ctx = 0;
  std::string domain;
  int route_tokens = 64;
  bool json = false;
  bool llamacpp = false;
  bool f32 = false;
};

void run_perplexity(const PerplexityOptions& o) {
  std::string text = read_text_file(o.file);
  LoadedModel lm = load_any(o.model);
  const Model* model = &lm.model();
  const Tokenizer& tok = model->require_tokenizer();
  // llama.cpp's protocol tokenizes with BOS (when the vocabulary adds one) and puts it at the
  // start of every window.
  std::vector<int32_t> tokens = tok.encode(text, /*add_special=*/o.llamacpp);
  PerplexityProtocol protocol;
  protocol.f32 = o.f32;
  if (o.llamacpp) {
    protocol.second_half_only = true;
    if (tok.spec().add_bos) protocol.window_bos = tok.spec().bos_id;
  }
  int64_t ctx = o.n_ctx > 0 ? o.n_ctx : model->hp.n_ctx_train;
  if (tokens.size() < 2) fail(o.file, ": only ", tokens.size(), " token(s); perplexity needs at least 2");
  ThreadPool pool(o.model.threads);
  Progress progress("perplexity", int64_t(tokens.size()));
  // A MoE routes each window on its first --route-tokens tokens (the "prompt"), unless forced.
  std::map<std::string, int64_t> windows_per_expert;
  WindowLayers layers;
  if (lm.moe || !o.domain.empty()) {
    layers = [&](std::span<const int32_t> window) {
      Routing r = resolve_routing(lm, o.domain, window.first(std::min<size_t>(window.size(), o.route_tokens)), pool);
      windows_per_expert[r.expert_name]++;
      return routed_layers(lm, r);
    };
  }
  PerplexityResult r = compute_perplexity(
      *model, tokens, ctx, pool, [&](int64_t done, double ppl) { progress.update(done, "ppl " + std::to_string(ppl)); },
      layers, protocol);
  progress.finish();
  if (o.json) {
    nlohmann::json j = {{"tokens", r.tokens}, {"scored", r.scored}, {"windows", r.windows},
                        {"ctx", ctx},         {"nll", r.mean_nll},  {"ppl", r.ppl}};
    if (!windows_per_expert.empty()) j["windows_per_expert"] = windows_per_expert;
    std::printf("%s\n", dump_json(j).c_str());
  } else {
    std::printf("tokens %lld  windows %lld  ctx %lld  mean nll %.6f  ppl %.6f\n", (long long)r.tokens,
                (long long)r.windows, (long long)ctx, r.mean_nll, r.ppl);
  }
}

}  // namespace

void add_perplexity(CLI::App& app) {
  auto o = std::make_shared<PerplexityOptions>();
  CLI::App* cmd = app.add_subcommand(
      "perplexity",
      "Perplexity of a text file: tokenized without special tokens, cut into consecutive windows of --ctx tokens;\n"
      "ppl = exp(mean NLL of every token of a window but its first, given its prefix in that window)");
  add_model_options(cmd, o->model);
  cmd->add_option("-f,--file", o->file, "UTF-8 text file")->required();
  cmd->add_option("-c,--ctx", o->n_ctx, "Window size in tokens (default: the model's context length)");
  add_domain_option(cmd, o->domain);
  cmd->add_option("--route-tokens", o->route_tokens, "MoE models: route each window on its first N tokens")
      ->check(CLI::PositiveNumber);
  cmd->add_flag("--llamacpp", o->llamacpp,
                "llama-perplexity's protocol, for comparing with it: BOS added (if the vocabulary adds one) and put "
                "first in every window, whole windows only, only each window's second half scored");
  cmd->add_flag("--f32", o->f32,
                "Compute in f32 throughout: no activation quantisation, no f16 rounding of attention inputs (as\n"
                "transformers on the dequantised weights; slower)");
  cmd->add_flag("--json", o->json, "Print {\"tokens\", \"ppl\", ...} as JSON");
  cmd->callback([o] { run_perplexity(*o); });
}

}  // namespace mf::cli
