#include "adapters/lora_io.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/text_file.h"
#include "formats/atomic_file.h"
#include "formats/gguf.h"
#include "formats/peft_config.h"
#include "formats/safetensors.h"
#include "model/gguf_export.h"
#include "ops/ops.h"

namespace mf {
namespace fs = std::filesystem;
namespace {

struct ModuleRef {
  int layer = -1, target = -1;
};

// Finds which layer and target a module name such as "model.layers.3.self_attn.q_proj" (or
// "blk.3.attn_q.weight") names, using the architecture's name table (hf or gguf column).
ModuleRef parse_module(const std::string& arch, const std::string& module, bool gguf) {
  for (int t = 0; t < kNumLoraTargets; ++t) {
    const TensorName& tn = tensor_name(arch, kLoraTargets[size_t(t)]);
    std::string pattern = gguf ? tn.gguf : tn.hf;
    if (!gguf) pattern = pattern.substr(0, pattern.rfind(".weight"));
    const size_t at = pattern.find("%d");
    const std::string prefix = pattern.substr(0, at), suffix = pattern.substr(at + 2);
    if (module.size() <= prefix.size() + suffix.size() || module.compare(0, prefix.size(), prefix) != 0 ||
        module.compare(module.size() - suffix.size(), suffix.size(), suffix) != 0)
      continue;
    const std::string digits = module.substr(prefix.size(), module.size() - prefix.size() - suffix.size());
    if (digits.empty() || digits.size() > 6 || digits.find_first_not_of("0123456789") != std::string::npos) continue;
    return ModuleRef{std::stoi(digits), t};
  }
  return {};
}

std::vector<float> to_f32(const TensorView& v) {
  std::vector<float> out(size_t(v.numel()));
  for (int64_t r = 0; r < v.rows(); ++r) ops::dequantize_row(v.dtype, v.row(r), out.data() + r * v.cols(), v.cols());
  return out;
}

// Stores A [r, n_in] and B [n_out, r] into the module, checking that the ranks agree.
void set_factors(LoraModule& m, const TensorView& a, const TensorView& b, const std::string& what) {
  if (a.n_dims != 2 || b.n_dims != 2) fail(what, ": A ", a.shape_str(), " and B ", b.shape_str(), " must be matrices");
  if (a.shape[0] != b.shape[1])
    fail(what, ": rank mismatch between A ", a.shape_str(), " (rank ", a.shape[0], ") and B ", b.shape_str(), " (rank ",
         b.shape[1], ")");
  if (a.shape[0] < 1) fail(what, ": rank 0");
  m.rank = a.shape[0];
  m.n_in = a.shape[1];
  m.n_out = b.shape[0];
  m.a = to_f32(a);
  const std::vector<float> bf = to_f32(b);  // [n_out, r]
  m.bt.resize(bf.size());                   // [r, n_out]
  for (int64_t o = 0; o < m.n_out; ++o)
    for (int64_t j = 0; j < m.rank; ++j) m.bt[size_t(j * m.n_out + o)] = bf[size_t(o * m.rank + j)];
}

// PEFT's rank_pattern / alpha_pattern keys match a module by its full name or a dotted suffix.
const nlohmann::json* pattern_for(const nlohmann::json& patterns, const std::string& module) {
  if (!patterns.is_object()) return nullptr;
  for (auto it = patterns.begin(); it != patterns.end(); ++it) {
    const std::string& key = it.key();
    if (module == key || (module.size() > key.size() && module.compare(module.size() - key.size(), key.size(), key) == 0 &&
                          module[module.size() - key.size() - 1] == '.'))
      return &it.value();
  }
  return nullptr;
}

float scale_for(float alpha, int64_t rank, bool rslora) {
  return rslora ? alpha / std::sqrt(float(rank)) : alpha / float(rank);
}

}  // namespace

LoraAdapter read_peft_lora(const std::string& path, const std::string& arch) {
  const fs::path dir = fs::is_directory(path) ? fs::path(path) : fs::path(path).parent_path();
  const std::string config_path = (dir / "adapter_config.json").string();
  if (!fs::exists(config_path)) fail(path, ": not a PEFT adapter (no adapter_config.json)");
  nlohmann::json cfg;
  try {
    cfg = nlohmann::json::parse(read_text_file(config_path));
  } catch (const nlohmann::json::exception& e) {
    fail(config_path, ": invalid JSON: ", e.what());
  }
  if (!cfg.is_object()) fail(config_path, ": expected a JSON object");
  const std::string type = cfg.value("peft_type", "");
  if (type != "LORA") fail(config_path, ": peft_type '", type, "' is not LORA");
  auto require = [&](const char* key) -> const nlohmann::json& {
    if (!cfg.contains(key) || !cfg[key].is_number()) fail(config_path, ": '", key, "' is missing or not a number");
    return cfg[key];
  };
  LoraAdapter a;
  a.format = "peft";
  a.arch = arch;
  a.source = dir.string();
  a.rank = require("r").get<int64_t>();
  a.alpha = require("lora_alpha").get<float>();
  a.rslora = cfg.value("use_rslora", false);
  a.qk_neox = true;
  if (cfg.contains("base_model_name_or_path") && cfg["base_model_name_or_path"].is_string())
    a.base_model = cfg["base_model_name_or_path"].get<std::string>();
  if (cfg.value("fan_in_fan_out", false)) fail(config_path, ": fan_in_fan_out adapters (GPT-2 Conv1D) are not supported");
  if (cfg.value("use_dora", false)) fail(config_path, ": DoRA adapters are not supported");
  if (cfg.contains("bias") && cfg["bias"].is_string() && cfg["bias"] != "none")
    fail(config_path, ": adapters that train biases (bias '", cfg["bias"].get<std::string>(), "') are not supported");
  if (cfg.contains("modules_to_save") && cfg["modules_to_save"].is_array() && !cfg["modules_to_save"].empty())
    fail(config_path, ": modules_to_save (fully trained copies of ", cfg["modules_to_save"].dump(),
         ") are not supported");
  if (cfg.contains("target_modules") && cfg["target_modules"].is_array()) {
    std::vector<std::string> known;
    for (int t = 0; t < kNumLoraTargets; ++t) known.push_back(lora_module_name(arch, t));
    for (const auto& m : cfg["target_modules"]) {
      const std::string name = m.is_string() ? m.get<std::string>() : m.dump();
      if (std::find(known.begin(), known.end(), name) == known.end())
        fail(config_path, ": unknown target module '", name, "' (moeforge applies LoRA to q/k/v/o_proj and "
             "gate/up/down_proj)");
    }
  }

  std::string weights = (dir / "adapter_model.safetensors").string();
  if (!fs::exists(weights)) fail(dir.string(), ": no adapter_model.safetensors (adapter_model.bin pickles are not read)");
  const SafetensorsCheckpoint ckpt = SafetensorsCheckpoint::open(weights);
  struct Pair {
    const TensorView *a = nullptr, *b = nullptr;
    std::string module;
  };
  std::map<std::pair<int, int>, Pair> pairs;
  const std::string prefix = "base_model.model.";
  for (const auto& [name, t] : ckpt.tensors()) {
    std::string rest = name.compare(0, prefix.size(), prefix) == 0 ? name.substr(prefix.size()) : name;
    bool is_b = false;
    std::string module;
    for (const char* tag : {".lora_A.weight", ".lora_B.weight", ".lora_A.default.weight", ".lora_B.default.weight"}) {
      const std::string s = tag;
      if (rest.size() > s.size() && rest.compare(rest.size() - s.size(), s.size(), s) == 0) {
        module = rest.substr(0, rest.size() - s.size());
        is_b = s[6] == 'B';
      }
    }
    if (module.empty())
      fail(weights, ": tensor '", name, "' is not a LoRA factor (lora_A / lora_B weight); embeddings, biases and "
           "DoRA magnitudes are not supported");
    const ModuleRef ref = parse_module(arch, module, /*gguf=*/false);
    if (ref.layer < 0)
      fail(weights, ": tensor '", name, "' targets module '", module, "', which is not a q/k/v/o or gate/up/down "
           "projection of a ", arch, " model (unknown target module)");
    Pair& p = pairs[{ref.layer, ref.target}];
    (is_b ? p.b : p.a) = &t.view;
    p.module = module;
  }
  const nlohmann::json alpha_pattern = cfg.value("alpha_pattern", nlohmann::json::object());
  for (const auto& [key, p] : pairs) {
    const std::string what = cat(weights, ": ", p.module);
    if (!p.a || !p.b) fail(what, ": has lora_", p.a ? "A" : "B", " but no lora_", p.a ? "B" : "A");
    if (size_t(key.first) >= a.layers.size()) a.layers.resize(size_t(key.first) + 1);
    LoraModule& m = a.layers[size_t(key.first)][size_t(key.second)];
    set_factors(m, *p.a, *p.b, what);
    float alpha = a.alpha;
    if (const auto* v = pattern_for(alpha_pattern, p.module); v && v->is_number())
      alpha = v->get<float>();
    m.scale = scale_for(alpha, m.rank, a.rslora);
  }
  // PHATGOOSE gates trained by moeforge (train's lora.gates_for), one [n_in] vector per map.
  if (const std::string gates = (dir / "gates.safetensors").string(); fs::exists(gates)) {
    const SafetensorsCheckpoint gk = SafetensorsCheckpoint::open(gates);
    const std::string suffix = ".lora_gate.weight";
    for (const auto& [name, t] : gk.tensors()) {
      std::string rest = name.compare(0, prefix.size(), prefix) == 0 ? name.substr(prefix.size()) : name;
      const bool ok = rest.size() > suffix.size() && rest.compare(rest.size() - suffix.size(), suffix.size(), suffix) == 0;
      const ModuleRef ref = ok ? parse_module(arch, rest.substr(0, rest.size() - suffix.size()), false) : ModuleRef{};
      if (ref.layer < 0 || size_t(ref.layer) >= a.layers.size() || !a.layers[size_t(ref.layer)][size_t(ref.target)].present())
        fail(gates, ": tensor '", name, "' is not the gate of an adapted map");
      if (t.view.n_dims != 1) fail(gates, ": gate '", name, "' must be a vector, got ", t.view.shape_str());
      a.layers[size_t(ref.layer)][size_t(ref.target)].gate = to_f32(t.view);
    }
  }
  return a;
}

LoraAdapter read_gguf_lora(const std::string& path) {
  std::unique_ptr<GgufFile> f = GgufFile::open(path);
  const std::string type = f->get_string("general.type", "");
  if (type != "adapter") fail(path, ": general.type is '", type, "', not 'adapter' (is it a model rather than a LoRA?)");
  const std::string atype = f->get_string("adapter.type", "");
  if (atype != "lora") fail(path, ": adapter.type '", atype, "' is not 'lora'");
  LoraAdapter a;
  a.format = "gguf";
  a.source = path;
  a.arch = f->get_string("general.architecture");
  a.qk_neox = arch_from_gguf(a.arch, path).gguf_rope_neox;
  a.alpha = float(f->get_float("adapter.lora.alpha", 0.0));
  a.base_model = f->get_string("general.base_model.0.name", "");
  std::map<std::pair<int, int>, std::pair<const TensorView*, const TensorView*>> pairs;
  for (const GgufTensorInfo& t : f->tensors()) {
    const std::string& name = t.name;
    const bool is_a = name.size() > 7 && name.compare(name.size() - 7, 7, ".lora_a") == 0;
    const bool is_b = name.size() > 7 && name.compare(name.size() - 7, 7, ".lora_b") == 0;
    if (!is_a && !is_b) fail(path, ": tensor '", name, "' is not a LoRA factor (.lora_a / .lora_b)");
    const std::string module = name.substr(0, name.size() - 7);
    const ModuleRef ref = parse_module(a.arch, module, /*gguf=*/true);
    if (ref.layer < 0)
      fail(path, ": tensor '", name, "' targets '", module, "', which is not a q/k/v/o or gate/up/down projection of a ",
           a.arch, " model (unknown target module)");
    auto& p = pairs[{ref.layer, ref.target}];
    (is_a ? p.first : p.second) = &t.view;
  }
  for (const auto& [key, p] : pairs) {
    const std::string what = cat(path, ": blk.", key.first, " ", lora_module_name(a.arch, key.second));
    if (!p.first || !p.second) fail(what, ": has one LoRA factor but not the other");
    if (size_t(key.first) >= a.layers.size()) a.layers.resize(size_t(key.first) + 1);
    LoraModule& m = a.layers[size_t(key.first)][size_t(key.second)];
    set_factors(m, *p.first, *p.second, what);
    // llama.cpp: alpha / rank, or 1 when no alpha is recorded.
    m.scale = a.alpha > 0 ? a.alpha / float(m.rank) : 1.0f;
    a.rank = std::max(a.rank, m.rank);
  }
  if (a.alpha <= 0) a.alpha = float(a.rank);
  // The GGUF mapping is released here: set_factors copied everything it needs.
  return a;
}

LoraAdapter load_lora(const std::string& path, const Model& model, const std::string& name) {
  if (!fs::exists(path)) fail("adapter '", path, "' does not exist");
  const bool peft = fs::is_directory(path) || fs::path(path).filename() == "adapter_config.json";
  LoraAdapter a = peft ? read_peft_lora(path, model.arch.name) : read_gguf_lora(path);
  if (!peft && a.arch != model.arch.name)
    fail(path, ": adapter for architecture '", a.arch, "', the model is '", model.arch.name, "'");
  fs::path p = fs::path(path);
  if (p.filename() == "adapter_config.json") p = p.parent_path();
  if (!p.has_filename()) p = p.parent_path();  // a trailing slash
  a.name = name.empty() ? p.stem().string() : name;
  // The task description: DIR/description.txt for a PEFT directory, FILE.description.txt for a GGUF.
  const std::string desc = peft ? (p / "description.txt").string() : path + ".description.txt";
  if (fs::exists(desc)) a.description = read_text_file(desc);
  while (!a.description.empty() && (a.description.back() == '\n' || a.description.back() == ' ')) a.description.pop_back();
  bind_lora(a, model);
  return a;
}

void write_gguf_lora(const std::string& path, const LoraAdapter& a, int head_dim) {
  const bool gguf_neox = arch_from_gguf(a.arch, path).gguf_rope_neox;
  const float alpha = a.alpha > 0 ? a.alpha : float(a.rank);
  GgufWriter w;
  w.set_string("general.architecture", a.arch);
  w.set_string("general.type", "adapter");
  w.set_string("general.name", a.name);
  w.set_string("adapter.type", "lora");
  w.set_f32("adapter.lora.alpha", alpha);
  int n = 0;
  for (size_t il = 0; il < a.layers.size(); ++il)
    for (int t = 0; t < kNumLoraTargets; ++t) {
      const LoraModule& m = a.layers[il][size_t(t)];
      if (!m.present()) continue;
      const TensorRole role = kLoraTargets[size_t(t)];
      std::vector<int64_t> order;
      if (a.qk_neox != gguf_neox && (role == TensorRole::Wq || role == TensorRole::Wk))
        order = rope_row_order(m.n_out, head_dim, /*to_interleaved=*/!gguf_neox);
      const float fold = m.scale * float(m.rank) / alpha;  // llama.cpp scales by alpha / r
      std::vector<uint8_t> abuf(m.a.size() * sizeof(float)), bbuf(m.bt.size() * sizeof(float));
      std::memcpy(abuf.data(), m.a.data(), abuf.size());
      float* b = reinterpret_cast<float*>(bbuf.data());  // [n_out, r]
      for (int64_t o = 0; o < m.n_out; ++o)
        for (int64_t j = 0; j < m.rank; ++j)
          b[o * m.rank + j] = fold * m.bt[size_t(j * m.n_out + (order.empty() ? o : order[size_t(o)]))];
      const std::string name = format_name(tensor_name(a.arch, role).gguf, int(il));
      w.keep(std::move(abuf));
      w.add_tensor(name + ".lora_a", make_view(DType::F32, {m.rank, m.n_in}, w.last_kept().data()));
      w.keep(std::move(bbuf));
      w.add_tensor(name + ".lora_b", make_view(DType::F32, {m.n_out, m.rank}, w.last_kept().data()));
      ++n;
    }
  if (n == 0) fail("adapter '", a.name, "' holds no LoRA weights to write");
  w.write(path);
}

void write_peft_lora(const std::string& dir, const LoraAdapter& a, int head_dim) {
  fs::create_directories(dir);
  std::vector<std::vector<float>> buffers;
  buffers.reserve(a.layers.size() * kNumLoraTargets * 2);
  std::vector<std::pair<std::string, TensorView>> tensors;
  nlohmann::json rank_pattern = nlohmann::json::object(), alpha_pattern = nlohmann::json::object();
  for (size_t il = 0; il < a.layers.size(); ++il)
    for (int t = 0; t < kNumLoraTargets; ++t) {
      const LoraModule& m = a.layers[il][size_t(t)];
      if (!m.present()) continue;
      std::string module = tensor_name(a.arch, kLoraTargets[size_t(t)]).hf;
      module = format_name(module.substr(0, module.rfind(".weight")).c_str(), int(il));
      const TensorRole role = kLoraTargets[size_t(t)];
      std::vector<int64_t> order;
      if (!a.qk_neox && (role == TensorRole::Wq || role == TensorRole::Wk))
        order = rope_row_order(m.n_out, head_dim, /*to_interleaved=*/false);
      buffers.emplace_back(m.a);  // [r, n_in]
      tensors.emplace_back("base_model.model." + module + ".lora_A.weight",
                           make_view(DType::F32, {m.rank, m.n_in}, buffers.back().data()));
      std::vector<float> b(size_t(m.n_out * m.rank));  // [n_out, r]
      for (int64_t o = 0; o < m.n_out; ++o)
        for (int64_t j = 0; j < m.rank; ++j)
          b[size_t(o * m.rank + j)] = m.bt[size_t(j * m.n_out + (order.empty() ? o : order[size_t(o)]))];
      buffers.push_back(std::move(b));
      tensors.emplace_back("base_model.model." + module + ".lora_B.weight",
                           make_view(DType::F32, {m.n_out, m.rank}, buffers.back().data()));
      if (m.rank != a.rank) rank_pattern[module] = m.rank;
      const float alpha = a.rslora ? m.scale * std::sqrt(float(m.rank)) : m.scale * float(m.rank);
      if (std::fabs(alpha - a.alpha) > 1e-6f * std::max(1.0f, std::fabs(a.alpha))) alpha_pattern[module] = alpha;
    }
  if (tensors.empty()) fail("adapter '", a.name, "' holds no LoRA weights to write");
  PeftLoraConfig pc;
  pc.rank = a.rank;
  pc.alpha = a.alpha;
  pc.rslora = a.rslora;
  pc.target_modules = a.target_names();
  pc.base_model = a.base_model;
  pc.rank_pattern = rank_pattern;
  pc.alpha_pattern = alpha_pattern;
  const nlohmann::json cfg = peft_lora_config_json(pc);
  write_safetensors((fs::path(dir) / "adapter_model.safetensors").string(), tensors);
  const std::string text = cfg.dump(2) + "\n";
  AtomicFile out((fs::path(dir) / "adapter_config.json").string());
  out.write(text.data(), text.size());
  out.commit();
}

}  // namespace mf
