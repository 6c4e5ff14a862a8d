// From a parsed API request to a scheduler Job: chat template, tokenization, context-length
// checks, routing and sampling parameters. Everything a client can get wrong is an ApiError.
#pragma once
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "model/model.h"
#include "serve/chat_template.h"
#include "serve/openai_json.h"
#include "serve/request.h"
#include "serve/route.h"
#include "serve/scheduler.h"

namespace mf::serve {

struct ServingContext {
  const Model* model = nullptr;
  std::string model_id;  // the name clients use in "model"
  ChatFormat chat_format = ChatFormat::Default;  // Jinja: the model's template (chat_jinja)
  std::shared_ptr<const ChatTemplate> chat_jinja;
  ChatTemplateTokens chat_tokens;
  int64_t n_ctx = 0;
  const Router* router = nullptr;  // null or empty: no routing
  std::mutex* route_mu = nullptr;  // serialises router calls
  const AdapterLibrary* adapters = nullptr;  // null or empty: no LoRA library
};

struct PreparedRequest {
  Job job;
  ResponseMeta meta;
  bool stream = false;
  bool include_usage = false;
};

// Throws ApiError: unknown model (404), messages the chat template rejects (400, its
// raise_exception message), empty prompt, token ids outside the vocabulary,
// prompt + max_tokens over the context (400, code context_length_exceeded), unknown expert.
PreparedRequest prepare_request(const ApiRequest& r, const ServingContext& ctx);

// "cmpl-" / "chatcmpl-" followed by 24 random hex digits.
std::string new_response_id(Endpoint e);

}  // namespace mf::serve
