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
  // The experts' [rows, cols] matrices: one merged [n_expert, rows, cols] tensor (GGUF) sliced
  // per expert without copying, or one tensor per expert (Hugging Face).
  std::vector<TensorView> get_experts(TensorRole role, int layer, int64_t rows, int64_t cols) const {
    const int64_t n_e = model.hp.n_expert;
    const TensorName& tn = tensor_name(model.arch.name, role);
    std::vector<TensorView> out;
    if (gguf) {
      std::string name = format_name(tn.gguf, layer);
      TensorView v = lookup(name);
      if (!v.data) fail(label, ": missing tensor '", name, "'");
      if (v.n_dims != 3 || v.shape[0] != n_e || v.shape[1] != rows || v.shape[2] != cols)
        fail(label, ": tensor '", name, "' has shape ", v.shape_str(), ", expected [", n_e, ", ", rows, ", ", cols,
             "] (experts, rows, columns)");
      if (v.dtype == DType::I32) fail(label, ": tensor '", name, "' has integer dtype");
      for (int64_t e = 0; e < n_e; ++e) {
        TensorView x = make_view(v.dtype, {rows, cols}, nullptr);
        x.data = static_cast<const uint8_t*>(v.data) + e * rows * x.row_stride();
        out.push_back(x);
      }
      return out;
    }
    for (int e = 0; e < n_e; ++e) {
      std::string name = format_name(tn.hf, layer, e);
      TensorView v = lookup(name);
      if (!v.data) fail(label, ": missing tensor '", name, "' (expert ", e, " of ", n_e, ")");
      if (v.n_dims != 2 || v.shape[0] != rows || v.shape[1] != cols)
        fail(label, ": tensor '", name, "' has shape ", v.shape_str(), ", expected [", rows, ", ", cols, "]");
      if (v.dtype == DType::I32) fail(label, ": tensor '", name, "' has integer dtype");
      out.push_back(v);
    }
    return out;
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

void bind_moe_ffn(const Binder& b, LayerWeights& l, int il) {
  const HParams& hp = b.model.hp;
  const int64_t E = hp.n_embd, NE = hp.n_expert, FE = hp.n_ff_exp, FS = hp.n_ff_shexp;
  l.ffn_gate_inp = b.get(TensorRole::FfnGateInp, il, {NE, E}, true);
  std::vector<TensorView> gate = b.get_experts(TensorRole::FfnGateExps, il, FE, E);
  std::vector<TensorView> up = b.get_experts(TensorRole::FfnUpExps, il, FE, E);
  std::vector<TensorView> down = b.get_experts(TensorRole::FfnDownExps, il, E, FE);
  l.experts.resize(size_t(NE));
  for (size_t e = 0; e < size_t(NE); ++e) l.experts[e] = ExpertWeights{gate[e], up[e], down[e]};
  if (FS > 0) {
    l.shared.gate = b.get(TensorRole::FfnGateShexp, il, {FS, E}, true);
    l.shared.up = b.get(TensorRole::FfnUpShexp, il, {FS, E}, true);
    l.shared.down = b.get(TensorRole::FfnDownShexp, il, {E, FS}, true);
    bool has_gate = false;
    for (const TensorName& n : tensor_names(b.model.arch.name)) has_gate |= n.role == TensorRole::FfnGateInpShexp;
    if (has_gate) l.ffn_gate_inp_shexp = b.get_f32(TensorRole::FfnGateInpShexp, il, {E}, true);
  }
  if (hp.n_expert_clusters > 0) {  // only the layers where clustering found structure carry one
    const int64_t C = hp.n_expert_clusters;
    l.ffn_cluster_gate = b.get_f32(TensorRole::FfnClusterGate, il, {C, E}, false);
    if (l.ffn_cluster_gate.data) l.ffn_cluster_gate_b = b.get_f32(TensorRole::FfnClusterGateB, il, {C}, true);
  }
}

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
    if (model.arch.qk_norm_full) {  // OLMoE: one norm over all heads of q, one over all of k
      l.q_norm = b.get_norm(TensorRole::AttnQNorm, il, Q, true);
      l.k_norm = b.get_norm(TensorRole::AttnKNorm, il, KV, true);
    }
    if (model.arch.post_norms) {
      l.attn_post_norm = b.get_norm(TensorRole::AttnPostNorm, il, E, true);
      l.ffn_post_norm = b.get_norm(TensorRole::FfnPostNorm, il, E, true);
    }
    l.ffn_norm = b.get_norm(TensorRole::FfnNorm, il, E, true);
    if (hp.n_expert > 0 && use_gguf_names && hp.is_moe_layer(il) && !lookup(b.name_of(TensorRole::FfnGateInp, il)).data)
      model.hp.dense_layers.push_back(il);  // GGUF: a layer without a router keeps a dense FFN
    if (hp.is_moe_layer(il)) {
      bind_moe_ffn(b, l, il);
      continue;
    }
    l.ffn_gate = b.get(TensorRole::FfnGate, il, {F, E}, true);
    l.ffn_up = b.get(TensorRole::FfnUp, il, {F, E}, true);
    l.ffn_down = b.get(TensorRole::FfnDown, il, {E, F}, true);
  }
  if (hp.n_expert > 0) {
    model.routing.n_expert = hp.n_expert;
    model.routing.top_k = hp.n_expert_used;
    model.routing.renormalize = hp.expert_weights_norm;
    model.routing.weight_scale = hp.expert_weights_scale;
    model.routing.top_p = hp.expert_top_p;
    model.routing.max_experts = hp.expert_max_used;
  }
}

void bind_mode_gates(Model& m, const TensorLookup& lookup, bool use_gguf_names, const std::string& label) {
  ModeLayout& mode = m.mode;
  if (!mode.enabled()) return;
  for (int b = 0; b < mode.n_block; ++b) {
    const std::string name = (use_gguf_names ? "mode_gate." : "model.mode_gates.") + std::to_string(b);
    TensorView w = lookup(name + ".weight"), bias = lookup(name + ".bias");
    if (!w.data || !bias.data) fail(label, ": missing MoDE gate tensor '", name, !w.data ? ".weight'" : ".bias'");
    if (w.n_dims != 2 || w.shape[0] != 1 + mode.n_expert() || w.shape[1] != m.hp.n_embd)
      fail(label, ": '", name, ".weight' has shape ", w.shape_str(), ", expected [", 1 + mode.n_expert(), ", ", m.hp.n_embd, "]");
    if (bias.numel() != 1 + mode.n_expert())
      fail(label, ": '", name, ".bias' has ", bias.numel(), " values, expected ", 1 + mode.n_expert());
    mode.gate_w.push_back(to_f32(m, w));
    mode.gate_b.push_back(to_f32(m, bias));
  }
}

}  // namespace mf
