// llama2.c checkpoint (.bin): a 7-int header, then f32 weights in a fixed order, each
// stacked over layers. Views point straight into the mapped file.
#include <cstring>

#include "core/error.h"
#include "core/mmap.h"
#include "model/loaders.h"

namespace mf {

void load_llama2c(Model& m, const std::string& path) {
  auto file = std::make_shared<MappedFile>(path);
  m.storage.push_back(file);
  m.format = "llama2c";
  if (file->size() < 28) fail(path, ": truncated llama2.c checkpoint (no header)");
  int32_t h[7];
  std::memcpy(h, file->data(), sizeof h);
  HParams& hp = m.hp;
  hp.arch = "llama";
  m.arch = {"llama", false, false, false};
  hp.n_embd = h[0];
  hp.n_ff = h[1];
  hp.n_layer = h[2];
  hp.n_head = h[3];
  hp.n_head_kv = h[4];
  hp.tied_embeddings = h[5] > 0;  // a negative vocab size marks a separate classifier
  hp.n_vocab = h[5] < 0 ? -h[5] : h[5];
  hp.n_ctx_train = h[6];
  hp.head_dim = hp.n_head > 0 ? hp.n_embd / hp.n_head : 0;
  hp.rms_eps = 1e-5f;
  hp.rope_theta = 10000.0f;
  hp.rope_neox = false;  // Meta's original interleaved pairs
  hp.validate(path);
  if (hp.n_ctx_train <= 0 || hp.n_embd % hp.n_head) fail(path, ": corrupted llama2.c header");

  const int64_t E = hp.n_embd, F = hp.n_ff, L = hp.n_layer, V = hp.n_vocab, KV = hp.n_embd_kv();
  const int64_t half = hp.head_dim / 2;
  const float* p = reinterpret_cast<const float*>(file->data() + 28);
  const float* end = reinterpret_cast<const float*>(file->data() + file->size());
  int64_t needed = V * E + L * E + L * E * E + 2 * L * KV * E + L * E * E + L * E + 3 * L * F * E + E + 2 * hp.n_ctx_train * half +
                   (hp.tied_embeddings ? 0 : V * E);
  if (end - p < needed)
    fail(path, ": truncated llama2.c checkpoint (", (end - p) * 4, " weight bytes, header implies ", needed * 4, ")");

  auto take = [&](int64_t n) {
    const float* q = p;
    p += n;
    return q;
  };
  auto view2 = [](const float* d, int64_t r, int64_t c) { return make_view(DType::F32, {r, c}, d); };
  auto view1 = [](const float* d, int64_t n) { return make_view(DType::F32, {n}, d); };

  Weights& w = m.w;
  w.layers.resize(L);
  w.tok_embd = view2(take(V * E), V, E);
  for (auto& l : w.layers) l.attn_norm = view1(take(E), E);
  for (auto& l : w.layers) l.wq = view2(take(E * E), E, E);
  for (auto& l : w.layers) l.wk = view2(take(KV * E), KV, E);
  for (auto& l : w.layers) l.wv = view2(take(KV * E), KV, E);
  for (auto& l : w.layers) l.wo = view2(take(E * E), E, E);
  for (auto& l : w.layers) l.ffn_norm = view1(take(E), E);
  for (auto& l : w.layers) l.ffn_gate = view2(take(F * E), F, E);
  for (auto& l : w.layers) l.ffn_down = view2(take(E * F), E, F);
  for (auto& l : w.layers) l.ffn_up = view2(take(F * E), F, E);
  w.output_norm = view1(take(E), E);
  take(2 * hp.n_ctx_train * half);  // precomputed RoPE tables (unused: recomputed from theta)
  w.output = hp.tied_embeddings ? w.tok_embd : view2(take(V * E), V, E);
}

}  // namespace mf
