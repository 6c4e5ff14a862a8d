#include "adapters/lora_adapter.h"

#include <memory>

#include "core/error.h"
#include "model/gguf_export.h"
#include "ops/ops.h"

namespace mf {
namespace {

const TensorView& target_weight(const LayerWeights& l, int target) {
  switch (kLoraTargets[size_t(target)]) {
    case TensorRole::Wq: return l.wq;
    case TensorRole::Wk: return l.wk;
    case TensorRole::Wv: return l.wv;
    case TensorRole::Wo: return l.wo;
    case TensorRole::FfnGate: return l.ffn_gate;
    case TensorRole::FfnUp: return l.ffn_up;
    default: return l.ffn_down;
  }
}

TensorView& target_weight(LayerWeights& l, int target) {
  return const_cast<TensorView&>(target_weight(static_cast<const LayerWeights&>(l), target));
}

// Reorders B's output rows (bt's columns) by `order` (destination column -> source column).
void permute_outputs(LoraModule& m, const std::vector<int64_t>& order) {
  std::vector<float> out(m.bt.size());
  for (int64_t j = 0; j < m.rank; ++j)
    for (int64_t o = 0; o < m.n_out; ++o) out[size_t(j * m.n_out + o)] = m.bt[size_t(j * m.n_out + order[size_t(o)])];
  m.bt = std::move(out);
}

}  // namespace

int lora_target_index(TensorRole role) {
  for (int i = 0; i < kNumLoraTargets; ++i)
    if (kLoraTargets[size_t(i)] == role) return i;
  return -1;
}

std::string lora_module_name(const std::string& arch, int target) {
  std::string hf = tensor_name(arch, kLoraTargets[size_t(target)]).hf;  // model.layers.%d.self_attn.q_proj.weight
  hf = hf.substr(0, hf.rfind(".weight"));
  return hf.substr(hf.rfind('.') + 1);
}

std::vector<std::string> LoraAdapter::target_names() const {
  std::vector<std::string> names;
  for (int t = 0; t < kNumLoraTargets; ++t)
    for (const auto& layer : layers)
      if (layer[size_t(t)].present()) {
        names.push_back(lora_module_name(arch, t));
        break;
      }
  return names;
}

int64_t LoraAdapter::n_params() const {
  int64_t n = 0;
  for (const auto& layer : layers)
    for (const LoraModule& m : layer) n += m.rank * (m.n_in + m.n_out);
  return n;
}

size_t LoraAdapter::n_bytes() const { return size_t(n_params()) * sizeof(float); }

void bind_lora(LoraAdapter& a, const Model& model) {
  const HParams& hp = model.hp;
  if (int64_t(a.layers.size()) > hp.n_layer)
    fail("adapter '", a.name, "' (", a.source, ") has ", a.layers.size(), " layers, the model ", hp.n_layer,
         ": it was made for another base model");
  a.layers.resize(size_t(hp.n_layer));
  bool any = false;
  for (int il = 0; il < hp.n_layer; ++il) {
    const LayerWeights& l = model.w.layers[size_t(il)];
    for (int t = 0; t < kNumLoraTargets; ++t) {
      LoraModule& m = a.layers[size_t(il)][size_t(t)];
      if (!m.present()) continue;
      any = true;
      const std::string what = cat("adapter '", a.name, "' layer ", il, " ", lora_module_name(a.arch, t));
      const TensorRole role = kLoraTargets[size_t(t)];
      if (l.is_moe() && (role == TensorRole::FfnGate || role == TensorRole::FfnUp || role == TensorRole::FfnDown))
        fail(what, ": this layer is a token-routed MoE; LoRA on its experts is not supported (target attention only)");
      const TensorView& w = target_weight(l, t);
      if (!w.data) fail(what, ": the model has no such weight");
      if (m.n_in != w.shape[1] || m.n_out != w.shape[0])
        fail(what, ": A [", m.rank, ", ", m.n_in, "] and B [", m.n_out, ", ", m.rank, "] do not fit the model's weight ",
             w.shape_str(), " (expected A [r, ", w.shape[1], "], B [", w.shape[0], ", r]): it was made for another base model");
      if (a.qk_neox != hp.rope_neox && (role == TensorRole::Wq || role == TensorRole::Wk))
        permute_outputs(m, rope_row_order(m.n_out, hp.head_dim, /*to_interleaved=*/!hp.rope_neox));
    }
  }
  if (!any) fail("adapter '", a.name, "' (", a.source, ") holds no LoRA weights");
  a.qk_neox = hp.rope_neox;
}

void merge_lora(Model& model, const LoraAdapter& a, float coef) {
  for (size_t il = 0; il < a.layers.size(); ++il)
    for (int t = 0; t < kNumLoraTargets; ++t) {
      const LoraModule& m = a.layers[il][size_t(t)];
      if (!m.present()) continue;
      TensorView& w = target_weight(model.w.layers[il], t);
      auto merged = std::make_shared<std::vector<float>>(size_t(m.n_out * m.n_in));  // [n_out, n_in]
      for (int64_t o = 0; o < m.n_out; ++o) {
        float* row = merged->data() + o * m.n_in;
        ops::dequantize_row(w.dtype, w.row(o), row, m.n_in);
        for (int64_t j = 0; j < m.rank; ++j) {
          const float c = coef * m.scale * m.bt[size_t(j * m.n_out + o)];
          const float* arow = m.a.data() + j * m.n_in;
          for (int64_t i = 0; i < m.n_in; ++i) row[i] += c * arow[i];
        }
      }
      w = make_view(DType::F32, {m.n_out, m.n_in}, merged->data());
      model.storage.push_back(merged);
    }
}

}  // namespace mf
