#include "model/weight_binder.h"

#include "core/error.h"
#include "ops/ops.h"

namespace mf {

namespace {

// An f32 copy of v owned by the model, each value plus `offset`.
TensorView owned_f32(Model& model, const TensorView& v, float offset) {
  auto buf = std::make_shared<std::vector<float>>(v.numel());
  for (int64_t r = 0; r < v.rows(); ++r) ref::dequantize_row(v.dtype, v.row(r), buf->data() + r * v.cols(), v.cols());
  if (offset != 0.0f)
    for (float& x : *buf) x += offset;
  TensorView out = v;
  out.dtype = DType::F32;
  out.data = buf->data();
  model.storage.push_back(buf);
  return out;
}

}  // namespace

TensorView to_f32(Model& model, const TensorView& v) { return v.dtype == DType::F32 ? v : owned_f32(model, v, 0.0f); }

namespace {

struct Binder {
  Model& model;
  const TensorLookup& lookup;
  bool gguf;
  const std::string& label;

  std::string name_of(TensorRole role, int layer) const {
    const TensorName& n = tensor_name(model.arch.name, role);
    return format_name(gguf ? n.gguf : n.hf, layer);
  }

  // Fetches a tensor and checks its shape; optional tensors may be absent.
  TensorView get(TensorRole role, int layer, std::initializer_list<int64_t> shape, bool required) const {
    std::string name = name_of(role, layer);
    TensorView v = lookup(name);
    if (!v.data) {
      if (required) fail(label, ": missing tensor '", name, "'");
      return v;
    }
    TensorView want = make_view(v.dtype, shape, nullptr);
    // 1-D tensors may be stored as [1, n] by some writers; compare element layout.
    bool same = v.numel() == want.numel() && v.cols() == want.cols() && (v.n_dims == want.n_dims || want.n_dims == 1);
    if (!same) fail(label, ": tensor '", name, "' has shape ", v.shape_str(), ", expected ", want.shape_str());
    if (v.dtype == DType::I32) fail(label, ": tensor '", name, "' has integer dtype");
    v.n_dims = want.n_dims;
    v.shape = want.shape;
    return v;
  }
  TensorView get_f32(TensorRole role, int layer, std::initializer_list<int64_t> shape, bool required) const {
    TensorView v = get(role, layer, shape, required);
    return v.data ? to_f32(model, v) : v;
  }
  // An RMSNorm weight, held as the multiplier itself: HF Gemma files store w for a scale of
  // (1 + w), GGUF (llama.cpp's converter) already stores 1 + w.
  TensorView get_norm(TensorRole role, int layer, int64_t n, bool required) const {
    TensorView v = get(role, layer, {n}, required);
    if (!v.data) return v;
    return gguf || !model.arch.hf_norm_plus_one ? to_f32(model, v) : owned_f32(model, v, 1.0f);
  }
};

}  // namespace

void bind_weights(Model& model, const TensorLookup& lookup, bool use_gguf_names, const std::string& label) {
  const HParams& hp = model.hp;
  Binder b{model, lookup, use_gguf_names, label};
  const int64_t E = hp.n_embd, Q = hp.n_embd_q(), KV = hp.n_embd_kv(), F = hp.n_ff, V = hp.n_vocab;
  Weights& w = model.w;
  w.tok_embd = b.get(TensorRole::TokEmbd, 0, {V, E}, true);
  w.output_norm = b.get_norm(TensorRole::OutputNorm, 0, E, true);
  w.output = b.get(TensorRole::Output, 0, {V, E}, !hp.tied_embeddings);
  if (!w.output.data) w.output = w.tok_embd;
  w.layers.resize(hp.n_layer);
  for (int il = 0; il < hp.n_layer; ++il) {
    LayerWeights& l = w.layers[il];
    l.attn_norm = b.get_norm(TensorRole::AttnNorm, il, E, true);
    l.wq = b.get(TensorRole::Wq, il, {Q, E}, true);
    l.wk = b.get(TensorRole::Wk, il, {KV, E}, true);
    l.wv = b.get(TensorRole::Wv, il, {KV, E}, true);
    l.wo = b.get(TensorRole::Wo, il, {E, Q}, true);
    l.bq = b.get_f32(TensorRole::Bq, il, {Q}, model.arch.qkv_bias);
    l.bk = b.get_f32(TensorRole::Bk, il, {KV}, model.arch.qkv_bias);
    l.bv = b.get_f32(TensorRole::Bv, il, {KV}, model.arch.qkv_bias);
    l.bo = b.get_f32(TensorRole::Bo, il, {E}, model.arch.o_bias);
    if (model.arch.qk_norm) {
      l.q_norm = b.get_norm(TensorRole::AttnQNorm, il, hp.head_dim, true);
      l.k_norm = b.get_norm(TensorRole::AttnKNorm, il, hp.head_dim, true);
    }
    if (model.arch.post_norms) {
      l.attn_post_norm = b.get_norm(TensorRole::AttnPostNorm, il, E, true);
      l.ffn_post_norm = b.get_norm(TensorRole::FfnPostNorm, il, E, true);
    }
    l.ffn_norm = b.get_norm(TensorRole::FfnNorm, il, E, true);
    l.ffn_gate = b.get(TensorRole::FfnGate, il, {F, E}, true);
    l.ffn_up = b.get(TensorRole::FfnUp, il, {F, E}, true);
    l.ffn_down = b.get(TensorRole::FfnDown, il, {E, F}, true);
  }
}

}  // namespace mf
