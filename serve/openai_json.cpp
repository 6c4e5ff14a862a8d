#include "serve/openai_json.h"

#include <cmath>

#include "model/routing_report.h"

namespace mf::serve {

using json = nlohmann::json;

namespace {

const char* object_name(Endpoint e, bool chunk) {
  if (e == Endpoint::Chat) return chunk ? "chat.completion.chunk" : "chat.completion";
  return "text_completion";
}

json envelope(const ResponseMeta& m, bool chunk) {
  return {{"id", m.id}, {"object", object_name(m.endpoint, chunk)}, {"created", m.created}, {"model", m.model}};
}

json finish_value(const std::string& reason) { return reason.empty() ? json(nullptr) : json(reason); }

}  // namespace

json route_extension(const RouteInfo& r) {
  return {{"route",
           {{"domain", r.domain},
            {"subdomain", r.subdomain},
            {"expert", r.expert()},
            {"confidence", r.confidence},
            {"density", r.density},
            {"forced", r.forced}}}};
}

json mode_gates_json(const ModeGateTally& t, const ModeLayout& layout) {
  json columns = json::array({layout.choice_name(kModeBackbone)});
  for (const std::string& e : layout.experts) columns.push_back(e);
  json blocks = json::array();
  for (int b = 0; b < t.n_block; ++b) {
    json row = json::array();
    for (int c = 0; c < t.width; ++c) row.push_back(std::round(t.mean(b, c) * 1e4) / 1e4);
    blocks.push_back(row);
  }
  return {{"tokens", t.tokens}, {"columns", columns}, {"mean_by_block", blocks}};
}

json usage_json(int prompt_tokens, int completion_tokens) {
  return {{"prompt_tokens", prompt_tokens},
          {"completion_tokens", completion_tokens},
          {"total_tokens", prompt_tokens + completion_tokens}};
}

json completion_body(const ResponseMeta& m, const std::string& text, const std::string& finish_reason,
                     int prompt_tokens, int completion_tokens) {
  json j = envelope(m, false);
  json choice = {{"index", 0}, {"logprobs", nullptr}, {"finish_reason", finish_value(finish_reason)}};
  if (m.endpoint == Endpoint::Chat) choice["message"] = {{"role", "assistant"}, {"content", text}};
  else choice["text"] = text;
  j["choices"] = json::array({choice});
  j["usage"] = usage_json(prompt_tokens, completion_tokens);
  if (m.route) j["moeforge"] = route_extension(*m.route);
  if (m.token_routing) j["moeforge"]["expert_routing"] = routing_params_json(*m.token_routing);
  if (m.adapter && m.adapter_report) j["moeforge"]["adapters"] = m.adapter_report(*m.adapter);
  if (m.mode_gates) j["moeforge"]["mode_gates"] = mode_gates_json(*m.mode_gates, *m.mode);
  return j;
}

json stream_chunk(const ResponseMeta& m, const std::string& text, const std::string& finish_reason, bool first) {
  json j = envelope(m, true);
  json choice = {{"index", 0}, {"logprobs", nullptr}, {"finish_reason", finish_value(finish_reason)}};
  if (m.endpoint == Endpoint::Chat) {
    json delta = json::object();
    if (first) delta["role"] = "assistant";
    if (first || !text.empty()) delta["content"] = text;
    choice["delta"] = delta;
  } else {
    choice["text"] = text;
  }
  j["choices"] = json::array({choice});
  if (first && m.route) j["moeforge"] = route_extension(*m.route);
  // The adapters' use is known once the request has finished: on the chunk with finish_reason.
  if (!finish_reason.empty() && m.adapter && m.adapter_report) j["moeforge"]["adapters"] = m.adapter_report(*m.adapter);
  if (!finish_reason.empty() && m.mode_gates) j["moeforge"]["mode_gates"] = mode_gates_json(*m.mode_gates, *m.mode);
  return j;
}

json usage_chunk(const ResponseMeta& m, int prompt_tokens, int completion_tokens) {
  json j = envelope(m, true);
  j["choices"] = json::array();
  j["usage"] = usage_json(prompt_tokens, completion_tokens);
  return j;
}

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string sse_event(const json& j) { return "data: " + dump(j) + "\n\n"; }

}  // namespace mf::serve
