#include "adapters/lora_adapter.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <random>

#include "core/error.h"
#include "core/half.h"
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

size_t LoraAdapter::n_bytes() const {
  const bool f16 = !layers.empty() && std::any_of(layers.begin(), layers.end(), [](const auto& l) {
    return std::any_of(l.begin(), l.end(), [](const LoraModule& m) { return !m.a16.empty(); });
  });
  return size_t(n_params()) * (f16 ? 2 : sizeof(float));
}

void set_lora_f16(LoraAdapter& adapter) {
  for (auto& layer : adapter.layers)
    for (LoraModule& m : layer) {
      if (!m.present()) continue;
      m.a16.resize(m.a.size());
      m.bt16.resize(m.bt.size());
      for (size_t i = 0; i < m.a.size(); ++i) m.a16[i] = f32_to_fp16(m.a[i]);
      for (size_t i = 0; i < m.bt.size(); ++i) m.bt16[i] = f32_to_fp16(m.bt[i]);
    }
}

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
      if (!m.gate.empty() && int64_t(m.gate.size()) != m.n_in)
        fail(what, ": gate of ", m.gate.size(), " values, the map's input has ", m.n_in);
      if (a.qk_neox != hp.rope_neox && (role == TensorRole::Wq || role == TensorRole::Wk))
        permute_outputs(m, rope_row_order(m.n_out, hp.head_dim, /*to_interleaved=*/!hp.rope_neox));
    }
  }
  if (!any) fail("adapter '", a.name, "' (", a.source, ") holds no LoRA weights");
  a.qk_neox = hp.rope_neox;
}

LoraAdapter init_lora(const Model& model, const std::string& name, int64_t rank, float alpha,
                      const std::vector<std::string>& targets, bool random_b, uint64_t seed) {
  if (rank < 1) fail("LoRA rank must be at least 1, got ", rank);
  std::array<bool, kNumLoraTargets> on{};
  for (const std::string& t : targets) {
    bool known = false;
    for (int i = 0; i < kNumLoraTargets; ++i)
      if (t == "all" || t == lora_module_name(model.arch.name, i)) on[size_t(i)] = known = true;
    if (!known) fail("unknown target module '", t, "' (q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj or all)");
  }
  LoraAdapter a;
  a.name = name;
  a.source = "init";
  a.format = "peft";
  a.arch = model.arch.name;
  a.rank = rank;
  a.alpha = alpha;
  a.qk_neox = model.hp.rope_neox;
  a.layers.resize(size_t(model.hp.n_layer));
  std::mt19937_64 rng(seed);
  for (int il = 0; il < model.hp.n_layer; ++il) {
    const LayerWeights& l = model.w.layers[size_t(il)];
    for (int t = 0; t < kNumLoraTargets; ++t) {
      const TensorRole role = kLoraTargets[size_t(t)];
      const bool ffn = role == TensorRole::FfnGate || role == TensorRole::FfnUp || role == TensorRole::FfnDown;
      if (!on[size_t(t)] || (ffn && l.is_moe())) continue;
      const TensorView& w = target_weight(l, t);
      LoraModule& m = a.layers[size_t(il)][size_t(t)];
      m.rank = rank;
      m.n_in = w.shape[1];
      m.n_out = w.shape[0];
      m.scale = alpha / float(rank);
      std::uniform_real_distribution<float> ua(-1.0f / std::sqrt(float(m.n_in)), 1.0f / std::sqrt(float(m.n_in)));
      std::uniform_real_distribution<float> ub(-1.0f / std::sqrt(float(rank)), 1.0f / std::sqrt(float(rank)));
      m.a.resize(size_t(rank * m.n_in));
      for (float& v : m.a) v = ua(rng);
      m.bt.assign(size_t(rank * m.n_out), 0.0f);
      if (random_b)
        for (float& v : m.bt) v = ub(rng);
    }
  }
  bind_lora(a, model);
  return a;
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
