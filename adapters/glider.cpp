#include "adapters/glider.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "model/session.h"
#include "ops/ops.h"
#include "tokenizer/chat_template.h"

namespace mf {

std::vector<float> embed_tokens(const Model& model, ThreadPool& pool, std::span<const int32_t> tokens, int max_tokens) {
  if (tokens.empty()) fail("cannot embed an empty text");
  const int64_t n = std::min<int64_t>(int64_t(tokens.size()), max_tokens);
  const int64_t E = model.hp.n_embd;
  Session s(model, int(n), pool);
  s.set_adapter(0, nullptr);  // the base model's view of the text
  std::vector<float> sum(static_cast<size_t>(E), 0.0f), row(static_cast<size_t>(E));
  const int last = int(model.hp.n_layer) - 1;
  s.set_hook([&](const HookEvent& e) {
    if (e.name != "block_out" || e.layer != last) return;
    for (int64_t t = 0; t < e.n_tokens; ++t) {
      ops::rmsnorm(e.data + t * E, model.w.output_norm.f32(), row.data(), 1, E, model.hp.rms_eps);  // [E]
      for (int64_t i = 0; i < E; ++i) sum[size_t(i)] += row[size_t(i)];
    }
  });
  s.eval(tokens.first(size_t(n)), false);
  double norm = 0;
  for (float v : sum) norm += double(v) * v;
  const float inv = norm > 0 ? float(1.0 / std::sqrt(norm)) : 0.0f;
  for (float& v : sum) v *= inv;
  return sum;
}

std::vector<float> embed_text(const Model& model, ThreadPool& pool, const std::string& text, int max_tokens) {
  return embed_tokens(model, pool, model.require_tokenizer().encode(text, /*add_special=*/true), max_tokens);
}

GlobalIndex build_global_index(const Model& model, ThreadPool& pool, const LoraLibrary& library, float temperature,
                               float alpha) {
  if (!(temperature > 0)) fail("the global router's temperature must be positive");
  GlobalIndex index;
  index.temperature = temperature;
  index.alpha = alpha;
  for (const LoraAdapter& a : library.adapters) {
    if (a.description.empty())
      fail("adapter '", a.name, "' has no description (write one to ", a.source,
           "/description.txt, or let the base model write it: moeforge lora describe)");
    index.descriptions.push_back(embed_text(model, pool, a.description));
  }
  return index;
}

std::vector<float> global_log_prior(const GlobalIndex& index, const std::vector<float>& query) {
  std::vector<float> logits;
  for (const std::vector<float>& d : index.descriptions) {
    double dot = 0;
    for (size_t i = 0; i < d.size(); ++i) dot += double(d[i]) * query[i];
    logits.push_back(float(dot) / index.temperature);
  }
  const float top = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (float l : logits) sum += std::exp(double(l - top));
  for (float& l : logits) l = l - top - float(std::log(sum));
  return logits;
}

std::vector<float> global_bias(const GlobalIndex& index, const std::vector<float>& query) {
  std::vector<float> b = global_log_prior(index, query);
  for (float& v : b) v *= index.alpha;
  return b;
}

void set_query(RoutedLora& lora, const Model& model, ThreadPool& pool, std::span<const int32_t> prompt) {
  if (!lora.router().needs_prior()) return;
  if (!lora.global_index()) fail(lora.router().name(), " routing needs the adapters' descriptions (a global index)");
  lora.set_prior(global_bias(*lora.global_index(), embed_tokens(model, pool, prompt)));
}

std::shared_ptr<RoutedLora> with_query(const RoutedLora& lora, const Model& model, ThreadPool& pool,
                                       std::span<const int32_t> prompt) {
  auto own = std::make_shared<RoutedLora>(lora.shared_library(), lora.shared_router());
  own->set_global_index(lora.global_index());
  set_query(*own, model, pool, prompt);
  return own;
}

std::string describe_task(const Model& model, ThreadPool& pool, const std::vector<std::string>& examples, int max_tokens) {
  if (examples.empty()) fail("describing a task needs at least one example");
  std::string ask = "Here are examples of one task.\n\n";
  for (size_t i = 0; i < examples.size(); ++i) ask += "Example " + std::to_string(i + 1) + ":\n" + examples[i] + "\n\n";
  ask += "Describe the task in one sentence.";
  const Tokenizer& tok = model.require_tokenizer();
  std::vector<int32_t> prompt;
  if (!model.chat_template.empty()) {
    ChatTemplate tmpl(model.chat_template);
    prompt = encode_chat_prompt(tok, tmpl.apply({{"user", ask}}, /*add_generation_prompt=*/true, chat_template_tokens(tok)));
  } else {
    prompt = tok.encode(ask + "\nThe task is:", /*add_special=*/true);
  }
  Session s(model, int(prompt.size()) + max_tokens, pool);
  s.set_adapter(0, nullptr);
  const float* logits = s.eval(prompt, false);
  std::string text;
  for (int i = 0; i < max_tokens; ++i) {
    const int32_t t = int32_t(ops::argmax(logits, model.hp.n_vocab));
    if (t == tok.spec().eos_id) break;
    text += tok.token_to_piece(t);
    if (text.find('\n') != std::string::npos && text.find_first_not_of(" \n") < text.find('\n')) break;
    logits = s.eval({&t, 1}, false);
  }
  const size_t b = text.find_first_not_of(" \n"), e = text.find('\n', b == std::string::npos ? 0 : b);
  return b == std::string::npos ? "" : text.substr(b, e == std::string::npos ? std::string::npos : e - b);
}

}  // namespace mf
