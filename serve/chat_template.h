// Chat prompts. A model that carries a Jinja chat template (GGUF tokenizer.chat_template or
// tokenizer_config.json) is rendered with it exactly as transformers' apply_chat_template does
// (tokenizer/chat_template.h): format "jinja". A model without one, or whose template uses a
// construct the interpreter does not support, falls back to a format recognised from the
// template's markers, else a plain-text default:
//
//   chatml   <|im_start|>{role}\n{content}<|im_end|>\n ... <|im_start|>assistant\n
//            (Qwen, SmolLM-Instruct, many fine-tunes; marker "<|im_start|>")
//   llama3   <|start_header_id|>{role}<|end_header_id|>\n\n{content}<|eot_id|> ...
//            <|start_header_id|>assistant<|end_header_id|>\n\n  (marker "<|start_header_id|>")
//   llama2   [INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST] {assistant}</s><s>[INST] ...
//            (Llama-2-chat, Mistral-Instruct; marker "[INST]")
//   zephyr   <|system|>\n{content}</s>\n<|user|>\n{content}</s>\n<|assistant|>\n
//            (marker "<|user|>")
//   default  {system}\n\n  User: {content}\n  Assistant: {content}\n ... Assistant:
//            (for base models and unknown templates; adds the stop string "\nUser:")
//
// The heuristic formats write no BOS: the tokenizer adds it when its configuration says so. A
// Jinja template may write bos_token itself; encode_chat_prompt then adds no second one.
#pragma once
#include <string>
#include <vector>

#include "serve/request.h"
#include "tokenizer/chat_template.h"

namespace mf::serve {

enum class ChatFormat { Default, ChatML, Llama3, Llama2, Zephyr, Jinja };

// Recognises a Jinja chat template from tokenizer_config.json by its markers; Default for ""
// or anything unrecognised.
ChatFormat detect_chat_format(const std::string& jinja_template);
// "default", "chatml", "llama3", "llama2", "zephyr", "jinja" (the model's own template);
// parse_chat_format throws mf::Error for other names.
std::string chat_format_name(ChatFormat f);
ChatFormat parse_chat_format(const std::string& name);

struct ChatPrompt {
  std::string text;               // tokenize with special tokens parsed
  std::vector<std::string> stop;  // stop strings the format implies (the default's "\nUser:")
};

// Renders the conversation with a heuristic format and opens the assistant's turn
// (ChatFormat::Jinja renders as Default here: it needs the template, see ChatRenderer).
ChatPrompt render_chat(ChatFormat f, const std::vector<ChatMessage>& messages);

// How a server or `generate --chat` builds chat prompts for one model.
struct ChatRenderer {
  ChatFormat format = ChatFormat::Default;          // Jinja: `jinja` below is set
  std::shared_ptr<const ChatTemplate> jinja;
  ChatTemplateTokens tokens;                        // bos_token, eos_token, ... for the template

  // Renders the conversation with add_generation_prompt. Throws jinja::TemplateException when
  // the template rejects the messages (raise_exception), jinja::Error for an unsupported
  // construct met only by these messages.
  ChatPrompt render(const std::vector<ChatMessage>& messages) const;
};

// Chooses the renderer: `requested` "" picks the model's template when it parses and renders a
// one-message conversation, else the format detected from it (then *warning, when not null,
// gets a one-line reason); "jinja" requires the model's template (throws mf::Error naming the
// problem); any other name forces that heuristic format.
ChatRenderer make_chat_renderer(const std::string& model_template, const ChatTemplateTokens& tokens,
                                const std::string& requested, std::string* warning);

}  // namespace mf::serve
