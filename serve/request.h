// Parsing and validation of OpenAI request bodies (/v1/completions, /v1/chat/completions).
// Every problem becomes an ApiError (400) naming the offending field.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mf::serve {

enum class Endpoint { Completions, Chat };

struct ChatMessage {
  std::string role;  // system, developer, user, assistant, tool
  std::string content;
};

struct ApiRequest {
  Endpoint endpoint = Endpoint::Completions;
  std::string model;  // "" when the request names none
  // Completions: a text prompt, or token ids when prompt_is_tokens.
  std::string prompt;
  std::vector<int32_t> prompt_tokens;
  bool prompt_is_tokens = false;
  std::vector<ChatMessage> messages;  // Chat
  std::optional<int> max_tokens;      // max_tokens / max_completion_tokens
  float temperature = 1.0f;           // 0: greedy
  float top_p = 1.0f;
  int top_k = 0;                      // extension; 0: whole vocabulary
  std::optional<uint64_t> seed;
  std::vector<std::string> stop;      // up to 4 strings
  bool stream = false;
  bool include_usage = false;         // stream_options.include_usage
  std::string expert;                 // extension "moeforge": {"expert": NAME}; "" automatic
  // Extension "moeforge": expert routing of a token-routed MoE for this request:
  // {"experts_used": K} or {"expert_top_p": P, "min_experts": A, "max_experts": B}.
  std::optional<int> experts_used, min_experts, max_experts;
  std::optional<float> expert_top_p;
  // Extension "moeforge": {"adapters": "name" | ["a", "b"] | "a:0.7,b:0.3" | "auto" | "uniform" |
  // "none"}: the LoRA adapters of the server's library this request runs with (list items joined by ",").
  std::optional<std::string> adapters;
};

// Largest nesting of arrays/objects accepted (deeper bodies are refused before parsing).
constexpr int kMaxJsonDepth = 32;
constexpr size_t kMaxStopStrings = 4;

// Parses a request body for the endpoint. Throws ApiError for malformed JSON, wrong types,
// out-of-range values and unsupported options (n > 1, logprobs, tools, ...).
ApiRequest parse_request(std::string_view body, Endpoint endpoint);

// Deepest nesting of [ and { outside strings (a cheap guard run before the JSON parser).
int json_depth(std::string_view body);

}  // namespace mf::serve
