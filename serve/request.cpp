#include "serve/request.h"

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "serve/api_error.h"

namespace mf::serve {

using json = nlohmann::json;

int json_depth(std::string_view body) {
  int depth = 0, max_depth = 0;
  bool in_string = false, escaped = false;
  for (char c : body) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      max_depth = std::max(max_depth, ++depth);
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return max_depth;
}

namespace {

[[noreturn]] void bad(const std::string& param, const std::string& message) { throw ApiError(400, message, param); }

const char* type_name(const json& v) { return v.type_name(); }

// Optional fields: absent and null both mean "use the default".
const json* field(const json& body, const char* key) {
  auto it = body.find(key);
  return it == body.end() || it->is_null() ? nullptr : &*it;
}

std::optional<double> get_number(const json& body, const char* key, double lo, double hi) {
  const json* v = field(body, key);
  if (!v) return std::nullopt;
  if (!v->is_number()) bad(key, std::string("'") + key + "' must be a number, got " + type_name(*v));
  double d = v->get<double>();
  if (!(d >= lo && d <= hi))
    bad(key, std::string("'") + key + "' must be between " + json(lo).dump() + " and " + json(hi).dump());
  return d;
}

std::optional<int64_t> get_int(const json& body, const char* key, int64_t lo, int64_t hi) {
  const json* v = field(body, key);
  if (!v) return std::nullopt;
  if (!v->is_number_integer()) bad(key, std::string("'") + key + "' must be an integer, got " + type_name(*v));
  if (v->is_number_unsigned() && v->get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))
    bad(key, std::string("'") + key + "' is too large");
  int64_t i = v->get<int64_t>();
  if (i < lo || i > hi) bad(key, std::string("'") + key + "' must be between " + std::to_string(lo) + " and " + std::to_string(hi));
  return i;
}

std::optional<bool> get_bool(const json& body, const char* key) {
  const json* v = field(body, key);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) bad(key, std::string("'") + key + "' must be a boolean, got " + type_name(*v));
  return v->get<bool>();
}

std::optional<std::string> get_string(const json& body, const char* key) {
  const json* v = field(body, key);
  if (!v) return std::nullopt;
  if (!v->is_string()) bad(key, std::string("'") + key + "' must be a string, got " + type_name(*v));
  return v->get<std::string>();
}

// Options this server does not implement: accepted only at their neutral values.
void refuse_unsupported(const json& body) {
  auto unsupported = [&](const char* key) {
    bad(key, std::string("'") + key + "' is not supported by this server");
  };
  if (const json* v = field(body, "logprobs"); v && !(v->is_boolean() && !v->get<bool>())) unsupported("logprobs");
  if (field(body, "top_logprobs")) unsupported("top_logprobs");
  if (get_bool(body, "echo").value_or(false)) unsupported("echo");
  if (get_int(body, "best_of", 1, 1'000'000).value_or(1) != 1) unsupported("best_of");
  if (const json* v = field(body, "suffix"); v && !(v->is_string() && v->get<std::string>().empty())) unsupported("suffix");
  for (const char* key : {"presence_penalty", "frequency_penalty"})
    if (get_number(body, key, -2.0, 2.0).value_or(0.0) != 0.0) unsupported(key);
  if (const json* v = field(body, "logit_bias"); v && !(v->is_object() && v->empty())) unsupported("logit_bias");
  for (const char* key : {"tools", "functions"})
    if (const json* v = field(body, key); v && !(v->is_array() && v->empty())) unsupported(key);
  for (const char* key : {"tool_choice", "function_call"})
    if (const json* v = field(body, key); v && !(v->is_string() && v->get<std::string>() == "none")) unsupported(key);
  if (const json* v = field(body, "response_format")) {
    if (!v->is_object() || v->value("type", json("text")) != "text") unsupported("response_format");
  }
}

void parse_stop(const json& body, ApiRequest& r) {
  const json* v = field(body, "stop");
  if (!v) return;
  if (v->is_string()) {
    r.stop.push_back(v->get<std::string>());
  } else if (v->is_array()) {
    if (v->size() > kMaxStopStrings) bad("stop", "'stop' takes at most " + std::to_string(kMaxStopStrings) + " strings");
    for (const json& s : *v) {
      if (!s.is_string()) bad("stop", "'stop' must be a string or an array of strings");
      r.stop.push_back(s.get<std::string>());
    }
  } else {
    bad("stop", std::string("'stop' must be a string or an array of strings, got ") + type_name(*v));
  }
  for (const std::string& s : r.stop)
    if (s.empty()) bad("stop", "'stop' strings must not be empty");
}

std::vector<int32_t> token_array(const json& a) {
  std::vector<int32_t> ids;
  for (const json& t : a) {
    if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() > std::numeric_limits<int32_t>::max())
      bad("prompt", "a token-id prompt must hold non-negative integers");
    ids.push_back(int32_t(t.get<int64_t>()));
  }
  return ids;
}

void parse_prompt(const json& body, ApiRequest& r) {
  const json* v = field(body, "prompt");
  if (!v) bad("prompt", "'prompt' is required");
  if (v->is_string()) {
    r.prompt = v->get<std::string>();
    return;
  }
  if (!v->is_array()) bad("prompt", std::string("'prompt' must be a string or an array, got ") + type_name(*v));
  if (v->empty()) bad("prompt", "'prompt' is empty");
  const json& first = (*v)[0];
  if (first.is_number_integer()) {
    r.prompt_tokens = token_array(*v);
    r.prompt_is_tokens = true;
    return;
  }
  if (v->size() > 1) bad("prompt", "only one prompt per request is supported (send several requests)");
  if (first.is_string()) {
    r.prompt = first.get<std::string>();
  } else if (first.is_array()) {
    if (first.empty()) bad("prompt", "'prompt' is empty");
    r.prompt_tokens = token_array(first);
    r.prompt_is_tokens = true;
  } else {
    bad("prompt", "'prompt' must be a string, an array of one string, or token ids");
  }
}

std::string message_content(const json& m, size_t i) {
  const std::string param = "messages[" + std::to_string(i) + "].content";
  auto it = m.find("content");
  if (it == m.end() || it->is_null()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (!it->is_array()) bad(param, "message content must be a string or an array of text parts, got " + std::string(type_name(*it)));
  std::string text;
  for (const json& part : *it) {
    if (!part.is_object() || part.value("type", json()) != "text" || !part.contains("text") || !part["text"].is_string())
      bad(param, "only text content parts ({\"type\": \"text\", \"text\": ...}) are supported");
    text += part["text"].get<std::string>();
  }
  return text;
}

void parse_messages(const json& body, ApiRequest& r) {
  const json* v = field(body, "messages");
  if (!v) bad("messages", "'messages' is required");
  if (!v->is_array()) bad("messages", std::string("'messages' must be an array, got ") + type_name(*v));
  if (v->empty()) bad("messages", "'messages' must not be empty");
  for (size_t i = 0; i < v->size(); ++i) {
    const json& m = (*v)[i];
    const std::string param = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) bad(param, "each message must be an object");
    auto role = m.find("role");
    if (role == m.end() || !role->is_string()) bad(param + ".role", "each message needs a string 'role'");
    std::string rs = role->get<std::string>();
    if (rs != "system" && rs != "developer" && rs != "user" && rs != "assistant" && rs != "tool")
      bad(param + ".role", "unknown role '" + rs + "' (system, developer, user, assistant or tool)");
    r.messages.push_back(ChatMessage{rs == "developer" ? "system" : rs, message_content(m, i)});
  }
}

}  // namespace

ApiRequest parse_request(std::string_view body, Endpoint endpoint) {
  if (json_depth(body) > kMaxJsonDepth)
    throw ApiError(400, "request body nests deeper than " + std::to_string(kMaxJsonDepth) + " levels");
  json j;
  try {
    j = json::parse(body.begin(), body.end());
  } catch (const json::exception& e) {  // parse_error, or out_of_range for numbers like 1e999
    // nlohmann's message names the position: "[json.exception.parse_error.101] parse error at line 1, column 3: ...".
    std::string what = e.what();
    auto pos = what.find("] ");
    throw ApiError(400, "invalid JSON body: " + (pos == std::string::npos ? what : what.substr(pos + 2)));
  }
  if (!j.is_object()) throw ApiError(400, std::string("request body must be a JSON object, got ") + j.type_name());

  ApiRequest r;
  r.endpoint = endpoint;
  r.model = get_string(j, "model").value_or("");
  if (endpoint == Endpoint::Completions) parse_prompt(j, r);
  else parse_messages(j, r);

  std::optional<int64_t> max_tokens = get_int(j, "max_tokens", 1, std::numeric_limits<int32_t>::max());
  if (endpoint == Endpoint::Chat && !max_tokens)
    max_tokens = get_int(j, "max_completion_tokens", 1, std::numeric_limits<int32_t>::max());
  if (max_tokens) r.max_tokens = int(*max_tokens);
  else if (endpoint == Endpoint::Completions) r.max_tokens = 16;  // OpenAI's default for completions
  r.temperature = float(get_number(j, "temperature", 0.0, 2.0).value_or(1.0));
  r.top_p = float(get_number(j, "top_p", 0.0, 1.0).value_or(1.0));
  r.top_k = int(get_int(j, "top_k", 0, std::numeric_limits<int32_t>::max()).value_or(0));
  if (const json* s = field(j, "seed")) {
    if (!s->is_number_integer()) bad("seed", std::string("'seed' must be an integer, got ") + type_name(*s));
    r.seed = s->is_number_unsigned() ? s->get<uint64_t>() : uint64_t(s->get<int64_t>());
  }
  parse_stop(j, r);
  if (int64_t n = get_int(j, "n", 1, std::numeric_limits<int32_t>::max()).value_or(1); n != 1)
    bad("n", "only n=1 is supported (send several requests for several completions)");
  r.stream = get_bool(j, "stream").value_or(false);
  if (const json* so = field(j, "stream_options")) {
    if (!so->is_object()) bad("stream_options", "'stream_options' must be an object");
    if (!r.stream) bad("stream_options", "'stream_options' is only allowed with stream: true");
    r.include_usage = get_bool(*so, "include_usage").value_or(false);
  }
  get_string(j, "user");  // accepted, unused; type-checked
  refuse_unsupported(j);
  if (const json* ext = field(j, "moeforge")) {
    if (!ext->is_object()) bad("moeforge", "'moeforge' must be an object");
    try {
      r.expert = get_string(*ext, "expert").value_or("");
    } catch (const ApiError& e) {
      throw ApiError(400, e.what(), "moeforge.expert");
    }
    for (auto [key, out] : {std::pair{"experts_used", &r.experts_used}, std::pair{"min_experts", &r.min_experts},
                            std::pair{"max_experts", &r.max_experts}}) {
      try {
        if (auto v = get_int(*ext, key, 1, 4096)) *out = int(*v);
      } catch (const ApiError& e) {
        throw ApiError(400, e.what(), std::string("moeforge.") + key);
      }
    }
    if (const json* p = field(*ext, "expert_top_p")) {
      if (!p->is_number() || !(p->get<double>() > 0.0 && p->get<double>() <= 1.0))
        bad("moeforge.expert_top_p", "'expert_top_p' must be a number in (0, 1]");
      r.expert_top_p = p->get<float>();
    }
    if (const json* a = field(*ext, "adapters")) {
      const char* what = "'adapters' must be an adapter name, \"auto\", \"uniform\", \"none\" or a list of names";
      if (a->is_string()) {
        r.adapters = a->get<std::string>();
      } else if (a->is_array() && !a->empty() && a->size() <= 64) {
        std::string joined;
        for (const json& item : *a) {
          if (!item.is_string()) bad("moeforge.adapters", what);
          joined += (joined.empty() ? "" : ",") + item.get<std::string>();
        }
        r.adapters = joined;
      } else {
        bad("moeforge.adapters", what);
      }
      if (r.adapters->empty()) bad("moeforge.adapters", what);
    }
  }
  return r;
}

}  // namespace mf::serve
