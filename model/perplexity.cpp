#include "model/perplexity.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "model/session.h"

namespace mf {

double token_nll(const float* logits, int32_t n_vocab, int32_t target) {
  float max = *std::max_element(logits, logits + n_vocab);
  double sum = 0;
  for (int32_t i = 0; i < n_vocab; ++i) sum += std::exp(double(logits[i]) - max);
  return std::log(sum) + max - logits[target];
}

PerplexityResult compute_perplexity(const Model& model, const std::vector<int32_t>& tokens, int64_t ctx, ThreadPool& pool,
                                    const std::function<void(int64_t, double)>& on_progress,
                                    const WindowLayers& layers, const PerplexityProtocol& protocol) {
  if (ctx < 2) fail("perplexity: context must be at least 2 tokens (got ", ctx, ")");
  if (tokens.size() < 2) fail("perplexity: needs at least 2 tokens (got ", tokens.size(), ")");
  PerplexityResult r;
  r.tokens = int64_t(tokens.size());
  Session session(model, int(std::min<int64_t>(ctx, r.tokens)), pool);
  if (protocol.f32) session.set_numerics(Numerics{false, false});
  const int32_t V = model.hp.n_vocab;
  if (protocol.second_half_only && r.tokens < ctx) fail("perplexity: needs at least one whole window of ", ctx, " tokens (got ", r.tokens, ")");
  const int64_t first_scored = protocol.second_half_only ? ctx / 2 : 0;  // logits position predicting the first scored token
  double total = 0;
  std::vector<int32_t> window;
  for (int64_t start = 0; start + 1 < r.tokens; start += ctx) {
    int64_t len = std::min<int64_t>(ctx, r.tokens - start);
    if (protocol.second_half_only && len < ctx) break;
    window.assign(tokens.begin() + start, tokens.begin() + start + len);  // [len]
    if (protocol.window_bos >= 0) window[0] = protocol.window_bos;
    session.reset();
    if (layers) session.set_layers(layers(window));
    ++r.windows;
    // Feed the window in chunks; logits at window position p predict token p+1.
    for (int64_t off = 0; off < len; off += Session::kMaxBatch) {
      int64_t n = std::min<int64_t>(Session::kMaxBatch, len - off);
      const float* logits = session.eval({window.data() + off, size_t(n)}, true);  // [n, V]
      for (int64_t i = 0; i < n && off + i + 1 < len; ++i) {
        if (off + i < first_scored) continue;
        total += token_nll(logits + i * V, V, window[size_t(off + i + 1)]);
        ++r.scored;
      }
      if (on_progress) on_progress(start + off + n, std::exp(total / std::max<int64_t>(r.scored, 1)));
    }
  }
  r.mean_nll = total / double(r.scored);
  r.ppl = std::exp(r.mean_nll);
  return r;
}

}  // namespace mf
