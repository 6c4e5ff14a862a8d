// Decoder forward pass: pre-norm attention with RoPE and GQA, then a gated FFN, over the rows of
// one or several sequences (slots) at once. The architecture's switches (model/arch.h) add
// Gemma's q/k head norms, output norms, GeGLU, embedding scale and interleaved local layers.
#include "model/session.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/half.h"
#include "ops/ops.h"

namespace mf {

Session::Session(const Model& model, int n_ctx, ThreadPool& pool, int n_slots)
    : model_(model), pool_(pool), n_ctx_(n_ctx > 0 ? n_ctx : model.hp.n_ctx_train) {
  if (n_slots < 1) fail("a session needs at least one slot, got ", n_slots);
  const HParams& hp = model.hp;
  slots_.resize(size_t(n_slots));
  for (Slot& sl : slots_) {
    sl.routing = model.routing;
    sl.adapter = model.adapter.get();
    sl.mode_expert = model.mode_expert;
    if (model.mode.enabled()) {
      sl.gates.n_block = model.mode.n_block;
      sl.gates.width = 1 + model.mode.n_expert();
      sl.gates.sum.assign(size_t(sl.gates.n_block * sl.gates.width), 0.0);
    }
  }
  routing_stats_.resize(size_t(hp.n_layer));
  inv_freq_ = model.inv_freq();
  inv_freq_swa_ = model.inv_freq(/*swa=*/true);
  const size_t cache = size_t(n_slots) * size_t(n_ctx_) * size_t(hp.n_embd_kv());
  k_cache_.assign(hp.n_layer, std::vector<float>(cache));
  v_cache_.assign(hp.n_layer, std::vector<float>(cache));
  const size_t B = kMaxBatch;
  x_.resize(B * hp.n_embd);
  xn_.resize(B * std::max(hp.n_embd, hp.n_embd_q()));
  q_.resize(B * hp.n_embd_q());
  k_.resize(B * hp.n_embd_kv());
  v_.resize(B * hp.n_embd_kv());
  attn_.resize(B * hp.n_embd_q());
  gate_.resize(B * hp.n_ff);
  up_.resize(B * hp.n_ff);
  pos_.resize(B);
  if (model.mode.enabled()) {
    mode_in_.resize(B * hp.n_embd);
    mode_acc_.resize(B * hp.n_embd);
    mode_gate_.resize(B * size_t(1 + model.mode.n_expert()));
  }
}

void Session::set_mode_expert(int slot, int choice) {
  if (slot < 0 || slot >= n_slots()) fail("slot ", slot, " is outside the session's ", n_slots(), " slots");
  const ModeLayout& md = model_.mode;
  if (!md.enabled()) fail("choosing a MoDE expert needs a MoDE model; this one has no experts beside its layers");
  if (choice < kModeGated || choice >= md.n_expert()) fail("MoDE expert ", choice, " is outside the model's ", md.n_expert());
  slots_[size_t(slot)].mode_expert = choice;
}

void Session::reset(int slot) {
  Slot& sl = slots_.at(size_t(slot));
  sl.n_past = 0;
  std::fill(sl.gates.sum.begin(), sl.gates.sum.end(), 0.0);
  sl.gates.tokens = 0;
}

void Session::copy_prefix(int src, int dst, int64_t n) {
  if (src < 0 || src >= n_slots() || dst < 0 || dst >= n_slots())
    fail("copy_prefix: slot ", src, " or ", dst, " is outside 0..", n_slots() - 1);
  if (n < 0 || n > slots_[size_t(src)].n_past)
    fail("copy_prefix: ", n, " tokens, but slot ", src, " holds ", slots_[size_t(src)].n_past);
  if (src != dst) {
    const size_t count = size_t(n) * size_t(model_.hp.n_embd_kv());
    for (int il = 0; il < model_.hp.n_layer; ++il) {
      std::copy_n(k_cache(il, src), count, k_cache(il, dst));  // [n, n_embd_kv]
      std::copy_n(v_cache(il, src), count, v_cache(il, dst));  // [n, n_embd_kv]
    }
  }
  slots_[size_t(dst)].n_past = n;
}

void Session::set_routing(int slot, const RouteParams& p) {
  if (slot < 0 || slot >= n_slots()) fail("slot ", slot, " is outside the session's ", n_slots(), " slots");
  if (model_.hp.n_expert == 0) fail("expert routing options need a token-routed MoE model; this one is dense");
  if (p.n_expert != model_.hp.n_expert) fail("routing for ", p.n_expert, " experts, the model has ", model_.hp.n_expert);
  if (std::string why = p.check(); !why.empty()) fail(why);
  slots_[size_t(slot)].routing = p;
}

void Session::set_adapter(int slot, LinearAdapter* adapter) {
  if (slot < 0 || slot >= n_slots()) fail("slot ", slot, " is outside the session's ", n_slots(), " slots");
  slots_[size_t(slot)].adapter = adapter;
}

void Session::adapt(const Group& g, int il, std::initializer_list<AdaptedMap> maps, const float* x, int64_t n_in) {
  const TensorRole role = maps.begin()->role;
  const bool ffn = role == TensorRole::FfnGate || role == TensorRole::FfnUp || role == TensorRole::FfnDown;
  AdaptedMap rows[4];
  for (const Placed& p : placed_) {
    if (p.row0 < g.row0 || p.row0 >= g.row1) continue;
    const Slot& s = slots_[size_t(p.slot)];
    if (!s.adapter || (ffn && s.layers)) continue;
    const int64_t off = p.row0 - g.row0;
    size_t i = 0;
    for (const AdaptedMap& m : maps) rows[i++] = AdaptedMap{m.role, m.y + off * m.n_out, m.n_out};  // [p.n, n_out]
    s.adapter->apply(il, {rows, maps.size()}, x + off * n_in, p.n, n_in, pool_);
  }
}

void Session::emit_moe_weights(int il, int64_t n) {
  const TokenRouting& rt = moe_.routing;
  moe_weights_.assign(size_t(n * rt.n_expert), 0.0f);  // [n, n_expert]
  for (int64_t t = 0; t < n; ++t)
    for (int j = 0; j < rt.n_used[size_t(t)]; ++j)
      moe_weights_[size_t(t * rt.n_expert + rt.expert[size_t(t * rt.k_max + j)])] = rt.weight[size_t(t * rt.k_max + j)];
  emit("moe_weights", il, moe_weights_.data(), n, rt.n_expert);
}

void Session::reset_routing_stats() {
  for (LayerRoutingStats& s : routing_stats_) s = LayerRoutingStats{};
}

void Session::set_layers(int slot, const std::vector<LayerWeights>* layers) {
  if (slot < 0 || slot >= n_slots()) fail("slot ", slot, " is outside the session's ", n_slots(), " slots");
  if (layers && model_.mode.enabled()) fail("a MoDE model takes no expert layer override (.moe experts)");
  if (layers) {
    if (int64_t(layers->size()) != model_.hp.n_layer) fail("expert has ", layers->size(), " layers, the model ", model_.hp.n_layer);
    const int64_t E = model_.hp.n_embd;
    for (const LayerWeights& l : *layers) {
      const int64_t F = l.ffn_gate.shape[0];
      bool ok = F > 0 && F <= model_.hp.n_ff && l.ffn_gate.shape[1] == E && l.ffn_up.shape[0] == F &&
                l.ffn_up.shape[1] == E && l.ffn_down.shape[0] == E && l.ffn_down.shape[1] == F &&
                (!l.ffn_down_b.data || (l.ffn_down_b.dtype == DType::F32 && l.ffn_down_b.numel() == E));
      if (!ok)
        fail("expert FFN shapes gate ", l.ffn_gate.shape_str(), ", up ", l.ffn_up.shape_str(), ", down ",
             l.ffn_down.shape_str(), ", down bias ", l.ffn_down_b.data ? l.ffn_down_b.shape_str() : "none",
             " do not fit the model (n_embd ", E, ", n_ff ", model_.hp.n_ff, ")");
    }
  }
  slots_[size_t(slot)].layers = layers;
}

const float* Session::eval(std::span<const int32_t> tokens, bool all_logits) {
  const int64_t n = int64_t(tokens.size());
  if (n == 0) fail("eval: no tokens");
  const int64_t n_past = slots_[0].n_past;
  if (n_past + n > n_ctx_) fail("context overflow: ", n_past, " + ", n, " tokens exceed the context of ", n_ctx_);
  for (int32_t t : tokens)
    if (t < 0 || t >= model_.hp.n_vocab) fail("token id ", t, " is outside the vocabulary of ", model_.hp.n_vocab);
  const int64_t V = model_.hp.n_vocab;
  logits_.resize(size_t(all_logits ? n : 1) * V);
  for (int64_t start = 0; start < n; start += kMaxBatch) {
    const int64_t nb = std::min(kMaxBatch, n - start);
    const bool last = start + nb == n;
    SeqInput in{0, tokens.subspan(size_t(start), size_t(nb)), all_logits ? LogitRows::All : last ? LogitRows::Last : LogitRows::None};
    forward({&in, 1}, all_logits ? logits_.data() + start * V : logits_.data());
  }
  return logits_.data();
}

const float* Session::step(std::span<const SeqInput> batch) {
  validate(batch);
  int64_t n_out = 0;
  for (const SeqInput& in : batch)
    n_out += in.logits == LogitRows::All ? int64_t(in.tokens.size()) : in.logits == LogitRows::Last ? 1 : 0;
  logits_.resize(size_t(std::max<int64_t>(n_out, 1)) * model_.hp.n_vocab);
  forward(batch, logits_.data());
  return logits_.data();
}

void Session::embed(std::span<const int32_t> tokens, float* x) const {
  const TensorView& e = model_.w.tok_embd;
  const int64_t E = model_.hp.n_embd;
  for (size_t t = 0; t < tokens.size(); ++t) ops::dequantize_row(e.dtype, e.row(tokens[t]), x + int64_t(t) * E, E);  // [E]
  if (model_.hp.embd_scale != 1.0f)
    for (size_t i = 0; i < tokens.size() * size_t(E); ++i) x[i] *= model_.hp.embd_scale;  // [n_tokens, E]
}

void Session::run_blocks(float* x, int64_t n_tokens, int first, int last) {
  const HParams& hp = model_.hp;
  if (first < 0 || first > last || last >= hp.n_layer)
    fail("run_blocks: blocks ", first, "..", last, " are outside the model's ", hp.n_layer);
  if (model_.mode.enabled()) fail("run_blocks: a MoDE model's blocks run beside their experts, not one by one");
  if (n_tokens < 1 || n_tokens > kMaxBatch || n_tokens > n_ctx_)
    fail("run_blocks: ", n_tokens, " tokens (at most ", std::min(kMaxBatch, n_ctx_), ")");
  slots_[0].n_past = 0;
  placed_.assign(1, Placed{0, 0, n_tokens, nullptr, LogitRows::None});
  groups_.assign(1, Group{0, n_tokens, slots_[0].layers});
  n_rows_ = n_tokens;
  const size_t n = size_t(n_tokens * hp.n_embd);
  std::copy_n(x, n, x_.data());  // [n_tokens, E]
  for (int64_t t = 0; t < n_tokens; ++t) pos_[size_t(t)] = int32_t(t);
  for (int il = first; il <= last; ++il) run_layer(il);
  slots_[0].n_past = n_tokens;
  std::copy_n(x_.data(), n, x);
}

void Session::matmul(const TensorView& w, const float* x, float* y, int64_t n) const {
  if (numerics_.quantized_acts)
    ops::matmul(w, x, y, n, pool_);
  else
    ops::matmul_f32_acts(w, x, y, n, pool_);
}

void Session::matmul_group(std::span<const TensorView* const> ws, const float* x, std::span<float* const> ys,
                           int64_t n) const {
  if (numerics_.quantized_acts) return ops::matmul_group(ws, x, ys, n, pool_);
  for (size_t i = 0; i < ws.size(); ++i) ops::matmul_f32_acts(*ws[i], x, ys[i], n, pool_);
}

namespace {
// x rounded to the nearest f16 value, in place.
void round_to_f16(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = fp16_to_f32(f32_to_fp16(x[i]));
}
}  // namespace

void Session::validate(std::span<const SeqInput> batch) const {
  if (batch.empty()) fail("step: no sequences");
  std::vector<bool> used(slots_.size(), false);
  int64_t total = 0;
  for (const SeqInput& in : batch) {
    if (in.slot < 0 || in.slot >= n_slots()) fail("step: slot ", in.slot, " is outside the session's ", n_slots(), " slots");
    if (used[size_t(in.slot)]) fail("step: slot ", in.slot, " appears twice");
    used[size_t(in.slot)] = true;
    const int64_t n = int64_t(in.tokens.size());
    if (n == 0) fail("step: slot ", in.slot, " has no tokens");
    const int64_t n_past = slots_[size_t(in.slot)].n_past;
    if (n_past + n > n_ctx_)
      fail("context overflow in slot ", in.slot, ": ", n_past, " + ", n, " tokens exceed the context of ", n_ctx_);
    for (int32_t t : in.tokens)
      if (t < 0 || t >= model_.hp.n_vocab) fail("token id ", t, " is outside the vocabulary of ", model_.hp.n_vocab);
    total += n;
  }
  if (total > kMaxBatch) fail("step: ", total, " tokens exceed the batch limit of ", kMaxBatch);
}

void Session::forward(std::span<const SeqInput> batch, float* logits_out) {
  const HParams& hp = model_.hp;
  const Weights& w = model_.w;
  const int64_t E = hp.n_embd;

  // Row layout: sequences sharing a layer override are adjacent (groups in order of first
  // appearance, sequences in input order within a group), so each weight runs once per group.
  placed_.clear();
  groups_.clear();
  std::vector<int64_t> input_row0(batch.size());
  std::vector<bool> done(batch.size(), false);
  int64_t rows = 0;
  for (size_t i = 0; i < batch.size(); ++i) {
    if (done[i]) continue;
    const auto* layers = slots_[size_t(batch[i].slot)].layers;
    const int64_t group_row0 = rows;
    for (size_t j = i; j < batch.size(); ++j) {
      if (done[j] || slots_[size_t(batch[j].slot)].layers != layers) continue;
      done[j] = true;
      const int64_t n = int64_t(batch[j].tokens.size());
      placed_.push_back(Placed{batch[j].slot, rows, n, batch[j].tokens.data(), batch[j].logits});
      input_row0[j] = rows;
      rows += n;
    }
    groups_.push_back(Group{group_row0, rows, layers});
  }
  n_rows_ = rows;

  float* x = x_.data();  // [n_rows, E] residual stream
  for (const Placed& p : placed_) {
    const int64_t n_past = slots_[size_t(p.slot)].n_past;
    embed({p.tokens, size_t(p.n)}, x + p.row0 * E);  // [n, E]
    for (int64_t t = 0; t < p.n; ++t) pos_[size_t(p.row0 + t)] = int32_t(n_past + t);
  }
  run_body();
  for (const Placed& p : placed_) slots_[size_t(p.slot)].n_past += p.n;

  if (!logits_out) return;
  // Only the rows we need go through the (large) output projection, in input order.
  float* sel = xn_.data();  // [n_out, E]
  int64_t n_out = 0;
  for (size_t i = 0; i < batch.size(); ++i) {
    const int64_t n = int64_t(batch[i].tokens.size());
    if (batch[i].logits == LogitRows::None) continue;
    const int64_t first = batch[i].logits == LogitRows::All ? 0 : n - 1;
    const int64_t count = n - first;
    std::memcpy(sel + n_out * E, x + (input_row0[i] + first) * E, size_t(count * E) * sizeof(float));
    n_out += count;
  }
  if (n_out == 0) return;
  ops::rmsnorm(sel, w.output_norm.f32(), sel, n_out, E, hp.rms_eps);  // [n_out, E]
  matmul(w.output, sel, logits_out, n_out);                           // [n_out, n_vocab]
}

void Session::run_body() {
  const ModeLayout& md = model_.mode;
  if (!md.enabled()) {
    for (int il = 0; il < model_.hp.n_layer; ++il) run_layer(il);
    return;
  }
  for (int b = 0; b < md.n_block; ++b) run_mode_block(b);
}

void Session::run_mode_block(int b) {
  const ModeLayout& md = model_.mode;
  const int64_t E = model_.hp.n_embd, n = n_rows_, C = 1 + md.n_expert();
  float* x = x_.data();            // [n, E] residual stream
  float* x_in = mode_in_.data();   // [n, E] the block's input
  float* acc = mode_acc_.data();   // [n, E] the gated sum
  float* a = mode_gate_.data();    // [n, C] gate weights, column 0 the backbone
  std::copy_n(x, n * E, x_in);
  // Gate per row over the candidates its slot allows; the experts any row needs run below.
  std::vector<bool> runs(size_t(md.n_expert()), false);
  const float* w = md.gate_w[size_t(b)].f32();  // [C, E]
  const float* bias = md.gate_b[size_t(b)].f32();  // [C]
  std::vector<float> logits(static_cast<size_t>(C));
  for (const Placed& p : placed_) {
    const int choice = slots_[size_t(p.slot)].mode_expert;
    for (int j = 0; j < md.n_expert(); ++j) runs[size_t(j)] = runs[size_t(j)] || choice == kModeGated || choice == j;
    for (int64_t r = p.row0; r < p.row0 + p.n; ++r) {
      const float* xr = x_in + r * E;
      float* ar = a + r * C;
      int n_cand = 0;
      float top = -INFINITY;
      for (int64_t c = 0; c < C; ++c) {
        const bool allowed = c == 0 || choice == kModeGated || choice == c - 1;
        float z = -INFINITY;
        if (allowed) {
          double dot = bias[c];
          for (int64_t i = 0; i < E; ++i) dot += double(w[c * E + i]) * xr[i];
          z = float(dot);
          ++n_cand;
        }
        logits[size_t(c)] = z;
        top = std::max(top, z);
      }
      double sum = 0;
      for (int64_t c = 0; c < C; ++c) sum += ar[c] = std::isfinite(logits[size_t(c)]) ? std::exp(logits[size_t(c)] - top) : 0.0f;
      for (int64_t c = 0; c < C; ++c) ar[c] = float(ar[c] / sum);
      if (md.gate_top_k > 0 && md.gate_top_k < n_cand) {  // keep the top k weights, renormalised
        std::vector<float> sorted(ar, ar + C);
        std::nth_element(sorted.begin(), sorted.begin() + (md.gate_top_k - 1), sorted.end(), std::greater<float>());
        const float kth = sorted[size_t(md.gate_top_k - 1)];
        int ties = md.gate_top_k;  // weights equal to the k-th kept in index order, as many as fit
        for (int64_t c = 0; c < C; ++c) ties -= ar[c] > kth;
        double kept = 0;
        for (int64_t c = 0; c < C; ++c) {
          if (ar[c] > kth || (ar[c] == kth && ties-- > 0))
            kept += ar[c];
          else
            ar[c] = 0;
        }
        for (int64_t c = 0; c < C; ++c) ar[c] = float(ar[c] / kept);
      }
    }
  }
  for (const Placed& p : placed_) {  // the slots' tallies
    ModeGateTally& t = slots_[size_t(p.slot)].gates;
    if (b == 0) t.tokens += p.n;
    for (int64_t r = p.row0; r < p.row0 + p.n; ++r)
      for (int64_t c = 0; c < C; ++c) t.sum[size_t(b * C + c)] += a[r * C + c];
  }
  emit("mode_gate", b, a, n, C);
  for (int il = md.first_layer(b); il < md.first_layer(b + 1); ++il) run_layer(il);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t i = 0; i < E; ++i) acc[r * E + i] = a[r * C] * x[r * E + i];  // [n, E]
  for (int j = 0; j < md.n_expert(); ++j) {
    if (!runs[size_t(j)]) continue;
    std::copy_n(x_in, n * E, x);
    for (int l = 0; l < md.layers_per_expert; ++l) run_layer(md.expert_layer(j, b, l));
    for (int64_t r = 0; r < n; ++r)
      for (int64_t i = 0; i < E; ++i) acc[r * E + i] += a[r * C + j + 1] * x[r * E + i];  // [n, E]
  }
  std::copy_n(acc, n * E, x);
}

void Session::run_layer(int il) {
  const HParams& hp = model_.hp;
  const int64_t E = hp.n_embd, Q = hp.n_embd_q(), KV = hp.n_embd_kv();
  float* x = x_.data();        // [n_rows, E] residual stream
  float* xn = xn_.data();      // [n_rows, E] normed input / block output
  float* q = q_.data();        // [n_rows, Q]
  float* k = k_.data();        // [n_rows, KV] this step's keys
  float* v = v_.data();        // [n_rows, KV] this step's values
  float* attn = attn_.data();  // [n_rows, Q]
  auto add_bias = [](float* y, const TensorView& b, int64_t n_tokens, int64_t width) {
    if (!b.data) return;
    for (int64_t t = 0; t < n_tokens; ++t)
      for (int64_t i = 0; i < width; ++i) y[t * width + i] += b.f32()[i];
  };
  // Adds the block output xn to the residual stream, through the output norm if the
  // architecture has one (Gemma's post-attention / post-FFN norms).
  auto add_residual = [&](int64_t r0, int64_t n, const TensorView& post_norm) {
    if (post_norm.data) ops::rmsnorm(xn + r0 * E, post_norm.f32(), xn + r0 * E, n, E, hp.rms_eps);  // [n, E]
    for (int64_t i = r0 * E; i < (r0 + n) * E; ++i) x[i] += xn[i];
  };

  // Attention block: projections per group, RoPE over all rows, attention per sequence.
  for (const Group& g : groups_) {
    const LayerWeights& l = layer(g, il);
    const int64_t r = g.row0, n = g.row1 - g.row0;
    ops::rmsnorm(x + r * E, l.attn_norm.f32(), xn + r * E, n, E, hp.rms_eps);  // [n, E]
    emit("attn_in", il, xn + r * E, n, E);
    const TensorView* qkv[] = {&l.wq, &l.wk, &l.wv};
    float* qkv_out[] = {q + r * Q, k + r * KV, v + r * KV};  // [n, Q], [n, KV], [n, KV]
    matmul_group(qkv, xn + r * E, qkv_out, n);
    adapt(g, il, {{TensorRole::Wq, q + r * Q, Q}, {TensorRole::Wk, k + r * KV, KV}, {TensorRole::Wv, v + r * KV, KV}},
          xn + r * E, E);
    add_bias(q + r * Q, l.bq, n, Q);
    add_bias(k + r * KV, l.bk, n, KV);
    add_bias(v + r * KV, l.bv, n, KV);
    // Per head (Gemma 3: [n*n_head, head_dim]) or over the whole vector (OLMoE: [n, Q]).
    if (l.q_norm.data) {
      const int64_t width = l.q_norm.numel();
      ops::rmsnorm(q + r * Q, l.q_norm.f32(), q + r * Q, n * Q / width, width, hp.rms_eps);
    }
    if (l.k_norm.data) {
      const int64_t width = l.k_norm.numel();
      ops::rmsnorm(k + r * KV, l.k_norm.f32(), k + r * KV, n * KV / width, width, hp.rms_eps);
    }
  }
  const bool swa = hp.is_swa_layer(il);
  const float* inv_freq = swa ? inv_freq_swa_.data() : inv_freq_.data();  // [head_dim/2]
  ops::rope(q, pos_.data(), n_rows_, hp.n_head, hp.head_dim, inv_freq, hp.rope_neox);
  ops::rope(k, pos_.data(), n_rows_, hp.n_head_kv, hp.head_dim, inv_freq, hp.rope_neox);
  AttentionParams ap;
  ap.n_head = hp.n_head;
  ap.n_head_kv = hp.n_head_kv;
  ap.head_dim = hp.head_dim;
  ap.scale = hp.attn_scale > 0 ? hp.attn_scale : 1.0f / std::sqrt(float(hp.head_dim));
  ap.kv_stride = KV;
  ap.window = swa ? hp.sliding_window : 0;
  if (numerics_.f16_attention) {
    round_to_f16(q, n_rows_ * Q);  // [n_rows, Q]
    round_to_f16(k, n_rows_ * KV);  // [n_rows, KV]
    round_to_f16(v, n_rows_ * KV);  // [n_rows, KV]
  }
  for (const Placed& p : placed_) {
    const int64_t n_past = slots_[size_t(p.slot)].n_past;
    float* kc = k_cache(il, p.slot);  // [n_ctx, KV]
    float* vc = v_cache(il, p.slot);  // [n_ctx, KV]
    std::memcpy(kc + n_past * KV, k + p.row0 * KV, size_t(p.n * KV) * sizeof(float));  // [n, KV]
    std::memcpy(vc + n_past * KV, v + p.row0 * KV, size_t(p.n * KV) * sizeof(float));  // [n, KV]
    ap.n_tokens = p.n;
    ap.n_past = n_past;
    ops::attention(q + p.row0 * Q, kc, vc, attn + p.row0 * Q, ap, pool_);  // [n, Q]
  }
  for (const Group& g : groups_) {
    const LayerWeights& l = layer(g, il);
    const int64_t r = g.row0, n = g.row1 - g.row0;
    emit("attn_out", il, attn + r * Q, n, Q);
    matmul(l.wo, attn + r * Q, xn + r * E, n);  // [n, E]
    adapt(g, il, {{TensorRole::Wo, xn + r * E, E}}, attn + r * Q, Q);
    add_bias(xn + r * E, l.bo, n, E);
    add_residual(r, n, l.attn_post_norm);
  }

  // Gated FFN block (SwiGLU or GeGLU), per group (an expert's n_ff may be narrower than the model's).
  for (const Group& g : groups_) {
    const LayerWeights& l = layer(g, il);
    const int64_t r = g.row0, n = g.row1 - g.row0;
    emit("ffn_resid", il, x + r * E, n, E);
    ops::rmsnorm(x + r * E, l.ffn_norm.f32(), xn + r * E, n, E, hp.rms_eps);  // [n, E]
    emit("ffn_in", il, xn + r * E, n, E);
    if (l.is_moe()) {
      // Each sequence's rows route with its slot's settings.
      segments_.clear();
      for (const Placed& p : placed_)
        if (p.row0 >= r && p.row0 < g.row1) segments_.push_back(RouteSegment{p.row0 - r, p.n, &slots_[size_t(p.slot)].routing});
      MoeFfnArgs args{&l, model_.arch.ffn_act, numerics_.quantized_acts, segments_};
      moe_ffn_forward(args, xn + r * E, n, E, xn + r * E, moe_, pool_, &routing_stats_[size_t(il)]);  // [n, E]
      if (hook_) emit_moe_weights(il, n);
      emit("ffn_out", il, xn + r * E, n, E);
      add_residual(r, n, l.ffn_post_norm);
      emit("block_out", il, x + r * E, n, E);
      continue;
    }
    const int64_t F = l.ffn_gate.shape[0];  // n_ff of the dense model or of the running expert
    float* gate = gate_.data();             // [n, F]
    float* up = up_.data();                 // [n, F]
    const TensorView* gate_up[] = {&l.ffn_gate, &l.ffn_up};
    float* gate_up_out[] = {gate, up};  // [n, F] each
    matmul_group(gate_up, xn + r * E, gate_up_out, n);
    adapt(g, il, {{TensorRole::FfnGate, gate, F}, {TensorRole::FfnUp, up, F}}, xn + r * E, E);
    if (model_.arch.ffn_act == FfnAct::GeluTanh)
      ops::geglu(gate, up, gate, n * F);  // [n, F]
    else
      ops::swiglu(gate, up, gate, n * F);  // [n, F]
    emit("ffn_gate_act", il, gate, n, F);
    matmul(l.ffn_down, gate, xn + r * E, n);  // [n, E]
    adapt(g, il, {{TensorRole::FfnDown, xn + r * E, E}}, gate, F);
    add_bias(xn + r * E, l.ffn_down_b, n, E);
    emit("ffn_out", il, xn + r * E, n, E);
    add_residual(r, n, l.ffn_post_norm);
    emit("block_out", il, x + r * E, n, E);
  }
}

}  // namespace mf
