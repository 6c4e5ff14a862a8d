// moeforge generate: prints the continuation of a prompt.
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/sampler.h"
#include "model/session.h"
#include "serve/chat_template.h"
#include "tools/commands.h"
#include "tools/common.h"
#include "tools/moe_cli.h"

namespace mf::cli {

namespace {

struct GenerateOptions {
  ModelOptions model;
  std::string prompt;
  int n_predict = 64;
  int n_ctx = 0;
  SamplerParams sampler;
  std::string domain;
  int reroute_every = -1;  // -1: the .moe file's setting
  bool json = false;
  bool chat = false;       // --prompt is a user message rendered with the model's chat template
  std::string system;      // --chat: optional system message
};

// The prompt's tokens: the text as given, or (--chat) the conversation rendered with the model's
// chat template and the assistant's turn opened.
std::vector<int32_t> prompt_tokens(const GenerateOptions& o, const Model& model, const Tokenizer& tok) {
  if (!o.chat) {
    if (!o.system.empty()) fail("--system needs --chat");
    return tok.encode(o.prompt, /*add_special=*/true);
  }
  std::string warning;
  serve::ChatRenderer chat = serve::make_chat_renderer(model.chat_template, chat_template_tokens(tok), "", &warning);
  if (!warning.empty()) std::fprintf(stderr, "warning: %s\n", warning.c_str());
  std::vector<serve::ChatMessage> messages;
  if (!o.system.empty()) messages.push_back({"system", o.system});
  messages.push_back({"user", o.prompt});
  std::string text;
  try {
    text = chat.render(messages).text;
  } catch (const jinja::TemplateException& e) {
    fail("the chat template rejects this conversation: ", e.what());
  }
  return encode_chat_prompt(tok, text);
}

void run_generate(const GenerateOptions& o) {
  LoadedModel lm = load_any(o.model);
  const Model* model = &lm.model();
  const Tokenizer& tok = model->require_tokenizer();
  std::vector<int32_t> prompt = prompt_tokens(o, *model, tok);
  if (prompt.empty()) fail("the prompt is empty and the tokenizer adds no BOS token");
  ThreadPool pool(o.model.threads);
  int n_ctx = o.n_ctx > 0 ? o.n_ctx : std::min<int>(model->hp.n_ctx_train, int(prompt.size()) + o.n_predict);
  if (int(prompt.size()) + o.n_predict > n_ctx)
    fail("prompt (", prompt.size(), " tokens) + ", o.n_predict, " new tokens exceed the context of ", n_ctx);
  Session session(*model, n_ctx, pool);
  Sampler sampler(o.sampler);
  Routing routing = resolve_routing(lm, o.domain, prompt, pool);
  lora_query(*model, pool, prompt);
  session.set_layers(routed_layers(lm, routing));
  nlohmann::json routes = nlohmann::json::array({routing_json(lm, routing)});
  if (lm.moe && !o.json)
    std::fprintf(stderr, "routed to %s (domain %s, confidence %.3f)\n", routing.expert_name.c_str(),
                 routing.domain.c_str(), routing.decision.confidence);
  const int reroute = o.reroute_every >= 0 ? o.reroute_every : (lm.moe ? lm.moe->info().reroute_every : 0);
  std::vector<int32_t> history = prompt;

  auto t0 = std::chrono::steady_clock::now();
  const float* logits = session.eval(prompt, false);
  auto t1 = std::chrono::steady_clock::now();
  std::string text;
  std::vector<int32_t> out;
  for (int i = 0; i < o.n_predict; ++i) {
    int32_t next = sampler.sample(logits, model->hp.n_vocab);
    if (next == tok.spec().eos_id) break;
    out.push_back(next);
    history.push_back(next);
    // Re-route on the most recent tokens; the KV cache is kept (attention is shared).
    if (lm.moe && o.domain.empty() && reroute > 0 && int(out.size()) % reroute == 0) {
      size_t window = std::min<size_t>(history.size(), 64);
      Routing next_route = lm.moe->route({history.data() + history.size() - window, window}, pool);
      if (next_route.expert != routing.expert) {
        routing = next_route;
        session.set_layers(routed_layers(lm, routing));
        nlohmann::json jr = routing_json(lm, routing);
        jr["at_token"] = out.size();
        routes.push_back(jr);
      }
    }
    std::string piece = tok.token_to_piece(next);
    text += piece;
    if (!o.json) {
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
    }
    if (i + 1 < o.n_predict) logits = session.eval({&next, 1}, false);
  }
  auto t2 = std::chrono::steady_clock::now();
  double prefill_s = std::chrono::duration<double>(t1 - t0).count();
  double decode_s = std::chrono::duration<double>(t2 - t1).count();
  if (o.json) {
    nlohmann::json j = {{"text", text},
                        {"prompt_tokens", prompt.size()},
                        {"completion_tokens", out.size()},
                        {"tokens", out},
                        {"prefill_tps", prompt.size() / std::max(prefill_s, 1e-9)},
                        {"decode_tps", out.size() / std::max(decode_s, 1e-9)},
                        {"route", routes[0]}};
    if (routes.size() > 1) j["reroutes"] = routes;
    if (nlohmann::json l = lora_json(*model); !l.is_null()) j["lora"] = l;
    std::printf("%s\n", dump_json(j).c_str());
  } else {
    std::printf("\n");
  }
}

}  // namespace

void add_generate(CLI::App& app) {
  auto o = std::make_shared<GenerateOptions>();
  CLI::App* cmd = app.add_subcommand("generate", "Generate a continuation of a prompt (prints only the continuation)");
  add_model_options(cmd, o->model);
  cmd->add_option("-p,--prompt", o->prompt, "Prompt text")->required();
  cmd->add_flag("--chat", o->chat,
                "Treat --prompt as a user message: render it with the model's chat template (else a\n"
                "built-in format) and generate the assistant's answer");
  cmd->add_option("--system", o->system, "With --chat: a system message before the user's");
  cmd->add_option("-n,--n-predict", o->n_predict, "Number of tokens to generate")->check(CLI::NonNegativeNumber);
  cmd->add_option("-c,--ctx", o->n_ctx, "Context size (default: prompt + n, at most the model's)");
  cmd->add_option("--temp", o->sampler.temperature, "Temperature; 0 is greedy")->check(CLI::NonNegativeNumber);
  cmd->add_option("--top-k", o->sampler.top_k, "Keep the K most likely tokens (0: all)");
  cmd->add_option("--top-p", o->sampler.top_p, "Nucleus sampling mass")->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--seed", o->sampler.seed, "Random seed");
  add_domain_option(cmd, o->domain);
  cmd->add_option("--reroute-every", o->reroute_every,
                  "MoE models: re-route on the last 64 tokens every N generated tokens (0: route once;\n"
                  "default: the .moe file's setting)");
  cmd->add_flag("--json", o->json, "Print {text, tokens, prefill_tps, decode_tps, route, ...} as JSON");
  cmd->callback([o] { run_generate(*o); });
}

}  // namespace mf::cli
