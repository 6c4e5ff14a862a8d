// Chat prompts: the model's chat template when it is one of a few well-known formats
// (recognised by their markers, since no Jinja engine is embedded), else a plain-text default.
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
// BOS is not written by the templates: the tokenizer adds it when its configuration says so.
#pragma once
#include <string>
#include <vector>

#include "serve/request.h"

namespace mf::serve {

enum class ChatFormat { Default, ChatML, Llama3, Llama2, Zephyr };

// Recognises a Jinja chat template from tokenizer_config.json by its markers; Default for ""
// or anything unrecognised.
ChatFormat detect_chat_format(const std::string& jinja_template);
// "default", "chatml", "llama3", "llama2", "zephyr"; parse_chat_format throws mf::Error for
// other names.
std::string chat_format_name(ChatFormat f);
ChatFormat parse_chat_format(const std::string& name);

struct ChatPrompt {
  std::string text;               // tokenize with special tokens parsed
  std::vector<std::string> stop;  // stop strings the format implies (the default's "\nUser:")
};

// Renders the conversation and opens the assistant's turn.
ChatPrompt render_chat(ChatFormat f, const std::vector<ChatMessage>& messages);

}  // namespace mf::serve
