// Helpers shared by the serving tests: a narrower "expert" cut out of a dense f32 model.
#pragma once
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "model/model.h"
#include "model/sampler.h"
#include "model/session.h"

namespace mf::test {

// An expert that keeps the first k FFN neurons of every layer: ffn_gate/up are row ranges of
// the dense weights, ffn_down [n_embd, k] is a copy of the first k columns.
struct TruncatedExpert {
  std::vector<std::vector<float>> down;  // per layer [n_embd, k]
  std::vector<LayerWeights> layers;
};

inline TruncatedExpert truncated_expert(const Model& m, int64_t k) {
  TruncatedExpert e;
  e.layers = m.w.layers;
  e.down.resize(e.layers.size());
  const int64_t E = m.hp.n_embd, F = m.hp.n_ff;
  for (size_t il = 0; il < e.layers.size(); ++il) {
    LayerWeights& l = e.layers[il];
    EXPECT_EQ(l.ffn_down.dtype, DType::F32) << "truncated_expert needs f32 weights";
    l.ffn_gate = l.ffn_gate.row_range(0, k);  // [k, E]
    l.ffn_up = l.ffn_up.row_range(0, k);      // [k, E]
    const float* d = m.w.layers[il].ffn_down.f32();  // [E, F]
    e.down[il].resize(size_t(E * k));
    for (int64_t r = 0; r < E; ++r) std::memcpy(e.down[il].data() + r * k, d + r * F, size_t(k) * sizeof(float));
    l.ffn_down = make_view(DType::F32, {E, k}, e.down[il].data());  // [E, k]
  }
  return e;
}

// Greedy continuation of a prompt run alone through a single-sequence Session: the reference a
// served request must reproduce (stops at EOS, as the server does).
inline std::string greedy_text(const Model& m, ThreadPool& pool, const std::vector<int32_t>& prompt, int max_tokens,
                               const std::vector<LayerWeights>* layers = nullptr, LinearAdapter* adapter = nullptr) {
  Session s(m, int(prompt.size()) + max_tokens, pool);
  s.set_layers(layers);
  s.set_adapter(0, adapter);
  const Tokenizer& tok = m.require_tokenizer();
  const float* logits = s.eval(prompt, false);  // [1, V]
  std::string text;
  for (int i = 0; i < max_tokens; ++i) {
    int32_t t = argmax(logits, int32_t(m.hp.n_vocab));
    if (t == tok.spec().eos_id) break;
    text += tok.token_to_piece(t);
    if (i + 1 < max_tokens) logits = s.eval({&t, 1}, false);
  }
  return text;
}

}  // namespace mf::test
