#include "serve/chat_template.h"

#include "core/error.h"

namespace mf::serve {

ChatFormat detect_chat_format(const std::string& t) {
  if (t.find("<|im_start|>") != std::string::npos) return ChatFormat::ChatML;
  if (t.find("<|start_header_id|>") != std::string::npos) return ChatFormat::Llama3;
  if (t.find("[INST]") != std::string::npos) return ChatFormat::Llama2;
  if (t.find("<|user|>") != std::string::npos) return ChatFormat::Zephyr;
  return ChatFormat::Default;
}

std::string chat_format_name(ChatFormat f) {
  switch (f) {
    case ChatFormat::ChatML: return "chatml";
    case ChatFormat::Llama3: return "llama3";
    case ChatFormat::Llama2: return "llama2";
    case ChatFormat::Zephyr: return "zephyr";
    case ChatFormat::Jinja: return "jinja";
    case ChatFormat::Default: break;
  }
  return "default";
}

ChatFormat parse_chat_format(const std::string& name) {
  for (ChatFormat f : {ChatFormat::Default, ChatFormat::ChatML, ChatFormat::Llama3, ChatFormat::Llama2, ChatFormat::Zephyr, ChatFormat::Jinja})
    if (chat_format_name(f) == name) return f;
  fail("unknown chat template '", name, "' (jinja, default, chatml, llama3, llama2 or zephyr)");
}

namespace {

std::string capitalised(std::string role) {
  if (!role.empty() && role[0] >= 'a' && role[0] <= 'z') role[0] = char(role[0] - 'a' + 'A');
  return role;
}

ChatPrompt render_default(const std::vector<ChatMessage>& messages) {
  ChatPrompt p;
  for (const ChatMessage& m : messages) {
    if (m.role == "system") p.text += m.content + "\n\n";
    else p.text += capitalised(m.role) + ": " + m.content + "\n";
  }
  p.text += "Assistant:";
  p.stop = {"\nUser:"};
  return p;
}

ChatPrompt render_llama2(const std::vector<ChatMessage>& messages) {
  // System text goes inside the first [INST]; turns alternate user/assistant.
  std::string system, text;
  bool open = false;  // an [INST] block waits for its answer
  for (const ChatMessage& m : messages) {
    if (m.role == "system") {
      system += (system.empty() ? "" : "\n") + m.content;
    } else if (m.role == "assistant") {
      if (open) text += " " + m.content + " </s>";
      open = false;
    } else {
      std::string content = m.content;
      if (!system.empty()) {
        content = "<<SYS>>\n" + system + "\n<</SYS>>\n\n" + content;
        system.clear();
      }
      text += std::string(text.empty() ? "" : "<s>") + "[INST] " + content + " [/INST]";
      open = true;
    }
  }
  return {text, {}};
}

}  // namespace

ChatPrompt render_chat(ChatFormat f, const std::vector<ChatMessage>& messages) {
  ChatPrompt p;
  switch (f) {
    case ChatFormat::Default:
    case ChatFormat::Jinja: return render_default(messages);
    case ChatFormat::Llama2: return render_llama2(messages);
    case ChatFormat::ChatML:
      for (const ChatMessage& m : messages) p.text += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
      p.text += "<|im_start|>assistant\n";
      return p;
    case ChatFormat::Llama3:
      for (const ChatMessage& m : messages)
        p.text += "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n" + m.content + "<|eot_id|>";
      p.text += "<|start_header_id|>assistant<|end_header_id|>\n\n";
      return p;
    case ChatFormat::Zephyr:
      for (const ChatMessage& m : messages) p.text += "<|" + m.role + "|>\n" + m.content + "</s>\n";
      p.text += "<|assistant|>\n";
      return p;
  }
  return render_default(messages);
}

ChatPrompt ChatRenderer::render(const std::vector<ChatMessage>& messages) const {
  if (format != ChatFormat::Jinja || !jinja) return render_chat(format, messages);
  std::vector<ChatTurn> turns;
  turns.reserve(messages.size());
  for (const ChatMessage& m : messages) turns.push_back({m.role, m.content});
  return {jinja->apply(turns, /*add_generation_prompt=*/true, tokens), {}};
}

ChatRenderer make_chat_renderer(const std::string& model_template, const ChatTemplateTokens& tokens, const std::string& requested,
                                std::string* warning) {
  ChatRenderer r;
  r.tokens = tokens;
  if (!requested.empty() && requested != "jinja") {
    r.format = parse_chat_format(requested);
    return r;
  }
  if (model_template.empty()) {
    if (requested == "jinja") fail("--chat-template jinja: the model carries no chat template");
    return r;  // Default
  }
  try {
    auto t = std::make_shared<const ChatTemplate>(model_template);
    try {
      t->apply({{"user", "Hello"}}, true, tokens);  // meets the constructs an ordinary request does
    } catch (const jinja::TemplateException&) {
      // The template refuses this conversation (e.g. it wants a system message): still usable.
    }
    r.format = ChatFormat::Jinja;
    r.jinja = std::move(t);
    return r;
  } catch (const jinja::Error& e) {
    if (requested == "jinja") fail("--chat-template jinja: the model's chat template cannot be used: ", e.what());
    r.format = detect_chat_format(model_template);
    if (warning)
      *warning = cat("the model's chat template cannot be used (", e.what(), "); using the '", chat_format_name(r.format),
                     "' format instead");
    return r;
  }
}

}  // namespace mf::serve
