#include "serve/prepare.h"

#include <atomic>
#include <chrono>
#include <random>

#include "core/error.h"
#include "serve/api_error.h"

namespace mf::serve {

namespace {

uint64_t random_u64() {
  static std::mutex mu;
  static std::mt19937_64 rng{std::random_device{}()};
  std::lock_guard<std::mutex> lock(mu);
  return rng();
}

std::vector<int32_t> tokenize(const ApiRequest& r, const ServingContext& ctx, std::vector<std::string>& template_stop) {
  const Tokenizer& tok = ctx.model->require_tokenizer();
  if (r.endpoint == Endpoint::Chat) {
    ChatRenderer renderer{ctx.chat_format, ctx.chat_jinja, ctx.chat_tokens};
    ChatPrompt p;
    try {
      p = renderer.render(r.messages);
    } catch (const jinja::TemplateException& e) {
      throw ApiError(400, e.what(), "messages");
    } catch (const jinja::Error& e) {
      throw ApiError(400, std::string("the chat template cannot render these messages: ") + e.what(), "messages");
    }
    template_stop = std::move(p.stop);
    return encode_chat_prompt(tok, p.text);
  }
  if (!r.prompt_is_tokens) return tok.encode(r.prompt, /*add_special=*/true, /*parse_special=*/true);
  for (int32_t t : r.prompt_tokens)
    if (t >= ctx.model->hp.n_vocab)
      throw ApiError(400, "token id " + std::to_string(t) + " is outside the vocabulary of " + std::to_string(ctx.model->hp.n_vocab),
                     "prompt");
  return r.prompt_tokens;
}

// The request's expert routing over the model's (400 naming the field if it does not fit).
RouteParams request_routing(const ApiRequest& r, const Model& model) {
  const char* field = r.experts_used ? "moeforge.experts_used" : "moeforge.expert_top_p";
  if (model.hp.n_expert == 0)
    throw ApiError(400, "this server runs a dense model; expert routing options need a token-routed MoE", field);
  RouteParams p = model.routing;
  if (r.experts_used) p.top_k = *r.experts_used;
  if (r.expert_top_p || r.min_experts || r.max_experts) {
    if (!r.expert_top_p) throw ApiError(400, "'min_experts' and 'max_experts' need 'expert_top_p'", "moeforge.expert_top_p");
    p.top_p = *r.expert_top_p;
    p.min_experts = r.min_experts.value_or(1);
    p.max_experts = r.max_experts.value_or(0);
    field = "moeforge.expert_top_p";
  }
  if (std::string why = p.check(); !why.empty()) throw ApiError(400, why, field);
  return p;
}

}  // namespace

std::string new_response_id(Endpoint e) {
  static const char* hex = "0123456789abcdef";
  std::string id = e == Endpoint::Chat ? "chatcmpl-" : "cmpl-";
  for (int part = 0; part < 2; ++part) {
    uint64_t v = random_u64();
    for (int i = 0; i < 12; ++i, v >>= 4) id += hex[v & 15];
  }
  return id;
}

PreparedRequest prepare_request(const ApiRequest& r, const ServingContext& ctx) {
  if (!r.model.empty() && r.model != ctx.model_id)
    throw ApiError(404, "The model '" + r.model + "' does not exist (this server serves '" + ctx.model_id + "')", "model",
                   "model_not_found");

  PreparedRequest p;
  std::vector<std::string> template_stop;
  p.job.prompt = tokenize(r, ctx, template_stop);
  const int64_t n_prompt = int64_t(p.job.prompt.size());
  if (n_prompt == 0) throw ApiError(400, "the prompt is empty (and the tokenizer adds no BOS token)", r.endpoint == Endpoint::Chat ? "messages" : "prompt");
  const int64_t n_ctx = ctx.n_ctx;
  const char* prompt_param = r.endpoint == Endpoint::Chat ? "messages" : "prompt";
  if (r.max_tokens) {
    if (n_prompt + *r.max_tokens > n_ctx)
      throw ApiError(400,
                     "This model's maximum context length is " + std::to_string(n_ctx) + " tokens. However, you requested " +
                         std::to_string(n_prompt + *r.max_tokens) + " tokens (" + std::to_string(n_prompt) + " in the " +
                         (r.endpoint == Endpoint::Chat ? "messages" : "prompt") + ", " + std::to_string(*r.max_tokens) +
                         " in the completion). Please reduce the length of the " + prompt_param + " or max_tokens.",
                     prompt_param, "context_length_exceeded");
    p.job.max_tokens = *r.max_tokens;
  } else {
    if (n_prompt >= n_ctx)
      throw ApiError(400,
                     "This model's maximum context length is " + std::to_string(n_ctx) + " tokens. However, your " +
                         prompt_param + " has " + std::to_string(n_prompt) + " tokens, leaving none for the completion.",
                     prompt_param, "context_length_exceeded");
    p.job.max_tokens = int(n_ctx - n_prompt);
  }

  p.job.sampler.temperature = r.temperature;
  p.job.sampler.top_p = r.top_p;
  p.job.sampler.top_k = r.top_k;
  p.job.sampler.seed = r.seed ? *r.seed : random_u64();
  p.job.stop = r.stop;
  for (std::string& s : template_stop) p.job.stop.push_back(std::move(s));

  if (ctx.router && *ctx.router) {
    RouteInfo info;
    try {
      std::lock_guard<std::mutex> lock(*ctx.route_mu);
      info = ctx.router->route(p.job.prompt, r.expert);
    } catch (const Error& e) {
      throw ApiError(400, e.what(), "moeforge.expert", "unknown_expert");
    }
    info.forced = !r.expert.empty();
    p.job.layers = info.layers;
    p.job.mode_expert = info.mode_expert;
    p.meta.route = info;
    if (ctx.model->mode.enabled()) {
      p.job.mode_gates = std::make_shared<ModeGateTally>();
      p.meta.mode_gates = p.job.mode_gates;
      p.meta.mode = &ctx.model->mode;
    }
  } else if (!r.expert.empty() && r.expert != "dense") {
    throw ApiError(400, "this server runs a dense model without experts; 'moeforge.expert' can only be \"dense\"",
                   "moeforge.expert", "unknown_expert");
  }

  if (r.experts_used || r.expert_top_p || r.min_experts || r.max_experts) p.job.routing = request_routing(r, *ctx.model);
  if (ctx.model->hp.n_expert > 0) p.meta.token_routing = p.job.routing.value_or(ctx.model->routing);

  const bool library = ctx.adapters && *ctx.adapters;
  if (r.adapters && *r.adapters != "none" && !library)
    throw ApiError(400, "this server has no LoRA adapters (start it with --lora); 'moeforge.adapters' can only be \"none\"",
                   "moeforge.adapters", "unknown_adapter");
  if (library) {
    const std::string spec = r.adapters.value_or(ctx.adapters->default_spec);
    if (!spec.empty() && spec != "none") {
      try {
        std::lock_guard<std::mutex> lock(*ctx.route_mu);
        p.job.adapter = ctx.adapters->make(spec, p.job.prompt);
      } catch (const Error& e) {
        throw ApiError(400, e.what(), "moeforge.adapters", "unknown_adapter");
      }
      p.meta.adapter = p.job.adapter;
      p.meta.adapter_report = ctx.adapters->report;
    }
  }

  p.meta.endpoint = r.endpoint;
  p.meta.id = new_response_id(r.endpoint);
  p.meta.created = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  p.meta.model = ctx.model_id;
  p.stream = r.stream;
  p.include_usage = r.include_usage;
  return p;
}

}  // namespace mf::serve
