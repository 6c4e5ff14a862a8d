// Llama-family forward pass: pre-norm attention with RoPE and GQA, then a SwiGLU FFN.
#include "model/session.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "ops/ops.h"

namespace mf {

Session::Session(const Model& model, int n_ctx, ThreadPool& pool)
    : model_(model), pool_(pool), n_ctx_(n_ctx > 0 ? n_ctx : model.hp.n_ctx_train) {
  const HParams& hp = model.hp;
  inv_freq_ = model.inv_freq();
  k_cache_.assign(hp.n_layer, std::vector<float>(size_t(n_ctx_) * hp.n_embd_kv()));
  v_cache_.assign(hp.n_layer, std::vector<float>(size_t(n_ctx_) * hp.n_embd_kv()));
  const size_t B = kMaxBatch;
  x_.resize(B * hp.n_embd);
  xn_.resize(B * std::max(hp.n_embd, hp.n_embd_q()));
  q_.resize(B * hp.n_embd_q());
  attn_.resize(B * hp.n_embd_q());
  gate_.resize(B * hp.n_ff);
  up_.resize(B * hp.n_ff);
  pos_.resize(B);
}

void Session::set_layers(const std::vector<LayerWeights>* layers) {
  if (layers) {
    if (int64_t(layers->size()) != model_.hp.n_layer) fail("expert has ", layers->size(), " layers, the model ", model_.hp.n_layer);
    const int64_t E = model_.hp.n_embd;
    for (const LayerWeights& l : *layers) {
      const int64_t F = l.ffn_gate.shape[0];
      bool ok = F > 0 && F <= model_.hp.n_ff && l.ffn_gate.shape[1] == E && l.ffn_up.shape[0] == F &&
                l.ffn_up.shape[1] == E && l.ffn_down.shape[0] == E && l.ffn_down.shape[1] == F;
      if (!ok)
        fail("expert FFN shapes gate ", l.ffn_gate.shape_str(), ", up ", l.ffn_up.shape_str(), ", down ",
             l.ffn_down.shape_str(), " do not fit the model (n_embd ", E, ", n_ff ", model_.hp.n_ff, ")");
    }
  }
  layers_ = layers;
}

const float* Session::eval(std::span<const int32_t> tokens, bool all_logits) {
  const int64_t n = int64_t(tokens.size());
  if (n == 0) fail("eval: no tokens");
  if (n_past_ + n > n_ctx_) fail("context overflow: ", n_past_, " + ", n, " tokens exceed the context of ", n_ctx_);
  for (int32_t t : tokens)
    if (t < 0 || t >= model_.hp.n_vocab) fail("token id ", t, " is outside the vocabulary of ", model_.hp.n_vocab);
  const int64_t V = model_.hp.n_vocab;
  logits_.resize(size_t(all_logits ? n : 1) * V);
  for (int64_t start = 0; start < n; start += kMaxBatch) {
    int64_t nb = std::min(kMaxBatch, n - start);
    bool last = start + nb == n;
    float* out = all_logits ? logits_.data() + start * V : (last ? logits_.data() : nullptr);
    forward_batch(tokens.data() + start, nb, all_logits, out);
  }
  return logits_.data();
}

void Session::forward_batch(const int32_t* tokens, int64_t n_tokens, bool all_logits, float* logits_out) {
  const HParams& hp = model_.hp;
  const Weights& w = model_.w;
  const int64_t E = hp.n_embd, Q = hp.n_embd_q(), KV = hp.n_embd_kv();
  float* x = x_.data();      // [n_tokens, E] residual stream
  float* xn = xn_.data();    // [n_tokens, E] normed input
  float* q = q_.data();      // [n_tokens, Q]
  float* attn = attn_.data();  // [n_tokens, Q]
  float* gate = gate_.data();  // [n_tokens, F]
  float* up = up_.data();      // [n_tokens, F]

  for (int64_t t = 0; t < n_tokens; ++t) {
    ops::dequantize_row(w.tok_embd.dtype, w.tok_embd.row(tokens[t]), x + t * E, E);  // [E]
    pos_[t] = int32_t(n_past_ + t);
  }
  auto add_bias = [&](float* y, const TensorView& b, int64_t width) {
    if (!b.data) return;
    for (int64_t t = 0; t < n_tokens; ++t)
      for (int64_t i = 0; i < width; ++i) y[t * width + i] += b.f32()[i];
  };

  AttentionParams ap;
  ap.n_tokens = n_tokens;
  ap.n_past = n_past_;
  ap.n_head = hp.n_head;
  ap.n_head_kv = hp.n_head_kv;
  ap.head_dim = hp.head_dim;
  ap.scale = 1.0f / std::sqrt(float(hp.head_dim));
  ap.kv_stride = KV;

  for (int il = 0; il < hp.n_layer; ++il) {
    const LayerWeights& l = layers_ ? (*layers_)[il] : w.layers[il];
    const int64_t F = l.ffn_gate.shape[0];  // n_ff of the dense model or of the running expert
    float* k_cur = k_cache_[il].data() + n_past_ * KV;  // [n_tokens, KV] slots of this batch
    float* v_cur = v_cache_[il].data() + n_past_ * KV;  // [n_tokens, KV]

    // Attention block.
    ops::rmsnorm(x, l.attn_norm.f32(), xn, n_tokens, E, hp.rms_eps);  // [n_tokens, E]
    emit("attn_in", il, xn, n_tokens, E);
    ops::matmul(l.wq, xn, q, n_tokens, pool_);      // [n_tokens, Q]
    ops::matmul(l.wk, xn, k_cur, n_tokens, pool_);  // [n_tokens, KV]
    ops::matmul(l.wv, xn, v_cur, n_tokens, pool_);  // [n_tokens, KV]
    add_bias(q, l.bq, Q);
    add_bias(k_cur, l.bk, KV);
    add_bias(v_cur, l.bv, KV);
    ops::rope(q, pos_.data(), n_tokens, hp.n_head, hp.head_dim, inv_freq_.data(), hp.rope_neox);
    ops::rope(k_cur, pos_.data(), n_tokens, hp.n_head_kv, hp.head_dim, inv_freq_.data(), hp.rope_neox);
    ops::attention(q, k_cache_[il].data(), v_cache_[il].data(), attn, ap, pool_);  // [n_tokens, Q]
    emit("attn_out", il, attn, n_tokens, Q);
    ops::matmul(l.wo, attn, xn, n_tokens, pool_);  // [n_tokens, E]
    add_bias(xn, l.bo, E);
    for (int64_t i = 0; i < n_tokens * E; ++i) x[i] += xn[i];

    // SwiGLU FFN block.
    ops::rmsnorm(x, l.ffn_norm.f32(), xn, n_tokens, E, hp.rms_eps);  // [n_tokens, E]
    emit("ffn_in", il, xn, n_tokens, E);
    ops::matmul(l.ffn_gate, xn, gate, n_tokens, pool_);  // [n_tokens, F]
    ops::matmul(l.ffn_up, xn, up, n_tokens, pool_);      // [n_tokens, F]
    ops::swiglu(gate, up, gate, n_tokens * F);           // [n_tokens, F]
    emit("ffn_gate_act", il, gate, n_tokens, F);
    ops::matmul(l.ffn_down, gate, xn, n_tokens, pool_);  // [n_tokens, E]
    for (int64_t i = 0; i < n_tokens * E; ++i) x[i] += xn[i];
    emit("block_out", il, x, n_tokens, E);
  }
  n_past_ += n_tokens;

  if (!logits_out) return;
  // Only the rows we need go through the (large) output projection.
  const float* rows = all_logits ? x : x + (n_tokens - 1) * E;
  int64_t n_rows = all_logits ? n_tokens : 1;
  ops::rmsnorm(rows, w.output_norm.f32(), xn, n_rows, E, hp.rms_eps);  // [n_rows, E]
  ops::matmul(w.output, xn, logits_out, n_rows, pool_);                 // [n_rows, n_vocab]
}

}  // namespace mf
