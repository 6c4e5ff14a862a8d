#include "model/quant_types.h"

#include "core/error.h"

namespace mf {

namespace {

// llama.cpp's use_more_bits: the first and last eighth of the layers, and every third between.
bool use_more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

struct Preset {
  const char* name;
  DType base;
  bool mixed;          // attn_v and ffn_down of use_more_bits layers get q6_K, the output q6_K
  uint32_t file_type;  // GGUF general.file_type (llama_ftype)
};
constexpr Preset kPresets[] = {
    {"q4_K_M", DType::Q4_K, true, 15}, {"q5_K_M", DType::Q5_K, true, 17}, {"q6_K", DType::Q6_K, false, 18},
    {"q8_0", DType::Q8_0, false, 7},   {"f16", DType::F16, false, 1},
};

}  // namespace

DType fallback_type(DType t, int64_t n_cols) {
  if (n_cols % block_elems(t) == 0) return t;
  switch (t) {
    case DType::Q4_K: return DType::Q5_0;
    case DType::Q5_K: return DType::Q5_1;
    case DType::Q6_K: return DType::Q8_0;
    case DType::Q2_K: case DType::Q3_K: return DType::Q4_0;
    default: return DType::F16;
  }
}

TypePolicy uniform_types(DType t) {
  return [t](const TensorToWrite& w) { return w.view->cols() % block_elems(t) ? DType::F16 : t; };
}

TypePolicy keep_types() {
  return [](const TensorToWrite& w) {
    DType t = w.view->dtype;
    if (t == DType::Q2_K || t == DType::Q3_K) t = DType::Q4_K;  // read, not written
    return fallback_type(t, w.view->cols());
  };
}

const std::vector<std::string>& preset_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n;
    for (const Preset& p : kPresets) n.push_back(p.name);
    return n;
  }();
  return names;
}

uint32_t preset_file_type(const std::string& preset) {
  for (const Preset& p : kPresets)
    if (preset == p.name) return p.file_type;
  return 0;
}

TypePolicy preset_types(const std::string& name, const Model& model) {
  const Preset* preset = nullptr;
  for (const Preset& p : kPresets)
    if (name == p.name) preset = &p;
  if (!preset) fail("unknown quantisation preset '", name, "' (expected q4_K_M, q5_K_M, q6_K, q8_0 or f16)");
  const Preset p = *preset;
  const int n_layer = model.hp.n_layer;
  const bool tied = model.hp.tied_embeddings;
  return [p, n_layer, tied](const TensorToWrite& w) {
    if (p.base == DType::F16) return DType::F16;  // llama.cpp applies its rules to quantised targets only
    const int64_t nx = w.view->cols();
    DType t = p.base;
    // The output projection (the token embeddings when tied): q6_K, or q8_0 when its rows are
    // not whole super-blocks; q8_0 stays q8_0.
    if (w.role == TensorRole::Output || (tied && w.role == TensorRole::TokEmbd)) {
      if (nx % kQK != 0) return DType::Q8_0;
      return p.base == DType::Q8_0 ? DType::Q8_0 : DType::Q6_K;
    }
    if (p.mixed && (w.role == TensorRole::Wv || w.role == TensorRole::FfnDown || w.role == TensorRole::FfnDownExps) && use_more_bits(w.layer, n_layer))
      t = DType::Q6_K;
    return fallback_type(t, nx);
  };
}

}  // namespace mf
