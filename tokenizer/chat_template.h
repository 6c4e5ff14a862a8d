// Chat templates: renders a model's Jinja chat template the way Hugging Face transformers'
// tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=...) does,
// with the interpreter in tokenizer/jinja.h.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "tokenizer/jinja.h"
#include "tokenizer/tokenizer.h"

namespace mf {

struct ChatTurn {
  std::string role;  // system, user, assistant, tool, ...
  std::string content;
};

// The special-token strings transformers passes to templates; "" leaves one undefined.
struct ChatTemplateTokens {
  std::string bos_token, eos_token, unk_token, pad_token;
};

// The model's special-token strings (from the tokenizer's spec).
ChatTemplateTokens chat_template_tokens(const Tokenizer& tok);

class ChatTemplate {
 public:
  // Parses; throws jinja::Error for malformed templates or unsupported constructs.
  explicit ChatTemplate(const std::string& source);
  // Throws jinja::TemplateException when the template rejects the conversation
  // (raise_exception), jinja::Error for unsupported features met while rendering.
  std::string apply(const std::vector<ChatTurn>& messages, bool add_generation_prompt, const ChatTemplateTokens& tokens) const;

 private:
  jinja::Template tmpl_;
};

// One-shot form: parse and render.
std::string apply_chat_template(const std::string& tmpl, const std::vector<ChatTurn>& messages, bool add_generation_prompt,
                                const std::string& bos_token, const std::string& eos_token);

// Tokenises a rendered chat prompt with special tokens parsed. BOS is added as the tokenizer's
// configuration says, except when the text already starts with the BOS string (a template that
// writes bos_token itself), as transformers and llama.cpp do.
std::vector<int32_t> encode_chat_prompt(const Tokenizer& tok, const std::string& text);

}  // namespace mf
