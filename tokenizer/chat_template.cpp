#include "tokenizer/chat_template.h"

namespace mf {

namespace {

std::string token_string(const TokenizerSpec& s, int32_t id) {
  return id >= 0 && size_t(id) < s.tokens.size() ? s.tokens[size_t(id)] : std::string();
}

}  // namespace

ChatTemplateTokens chat_template_tokens(const Tokenizer& tok) {
  const TokenizerSpec& s = tok.spec();
  return {token_string(s, s.bos_id), token_string(s, s.eos_id), token_string(s, s.unk_id), token_string(s, s.pad_id)};
}

ChatTemplate::ChatTemplate(const std::string& source) : tmpl_(source) {}

std::string ChatTemplate::apply(const std::vector<ChatTurn>& messages, bool add_generation_prompt,
                                const ChatTemplateTokens& tokens) const {
  jinja::Value msgs = jinja::Value::array();
  for (const ChatTurn& m : messages) {
    jinja::Value j = jinja::Value::object();
    j["role"] = m.role;
    j["content"] = m.content;
    msgs.push_back(std::move(j));
  }
  jinja::Value vars = jinja::Value::object();
  vars["messages"] = std::move(msgs);
  vars["add_generation_prompt"] = add_generation_prompt;
  const std::pair<const char*, const std::string*> special[] = {
      {"bos_token", &tokens.bos_token}, {"eos_token", &tokens.eos_token}, {"unk_token", &tokens.unk_token}, {"pad_token", &tokens.pad_token}};
  for (const auto& [name, value] : special)
    if (!value->empty()) vars[name] = *value;
  return tmpl_.render(vars);
}

std::string apply_chat_template(const std::string& tmpl, const std::vector<ChatTurn>& messages, bool add_generation_prompt,
                                const std::string& bos_token, const std::string& eos_token) {
  ChatTemplateTokens t;
  t.bos_token = bos_token;
  t.eos_token = eos_token;
  return ChatTemplate(tmpl).apply(messages, add_generation_prompt, t);
}

std::vector<int32_t> encode_chat_prompt(const Tokenizer& tok, const std::string& text) {
  const TokenizerSpec& s = tok.spec();
  const std::string bos = token_string(s, s.bos_id);
  const bool has_bos = s.add_bos && !bos.empty() && text.compare(0, bos.size(), bos) == 0;
  std::vector<int32_t> ids = tok.encode(text, /*add_special=*/!has_bos || s.add_eos, /*parse_special=*/true);
  // add_special also appends EOS where the spec says so; then drop only the duplicate BOS.
  if (has_bos && s.add_eos && ids.size() >= 2 && ids[0] == s.bos_id && ids[1] == s.bos_id) ids.erase(ids.begin());
  return ids;
}

}  // namespace mf
