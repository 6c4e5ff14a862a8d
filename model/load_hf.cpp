// Hugging Face layout: config.json + (sharded) safetensors.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "formats/safetensors.h"
#include "model/loaders.h"
#include "model/weight_binder.h"

namespace mf {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

template <typename T>
T get_or(const json& j, const char* key, T def, const std::string& label) {
  if (!j.contains(key) || j[key].is_null()) return def;
  try {
    return j[key].get<T>();
  } catch (const json::exception&) {
    fail(label, ": '", key, "' has the wrong type");
  }
}

template <typename T>
T get_req(const json& j, const char* key, const std::string& label) {
  if (!j.contains(key) || j[key].is_null()) fail(label, ": missing '", key, "'");
  return get_or<T>(j, key, T{}, label);
}

// Gemma 3's interleaving of local and global layers: `layer_types` (transformers >= 4.53) or
// `sliding_window_pattern`; only the regular pattern (every N-th layer global) is supported.
int gemma3_layer_pattern(const json& cfg, int n_layer, const std::string& label) {
  int pattern = get_or<int>(cfg, "sliding_window_pattern", 6, label);
  if (cfg.contains("layer_types") && cfg["layer_types"].is_array()) {
    const json& types = cfg["layer_types"];
    int first_global = -1;
    for (size_t i = 0; i < types.size() && first_global < 0; ++i)
      if (types[i] == "full_attention") first_global = int(i);
    pattern = first_global + 1;
    bool regular = first_global >= 0 && int(types.size()) == n_layer;
    for (int i = 0; regular && i < n_layer; ++i)
      regular = types[size_t(i)] == ((i + 1) % pattern == 0 ? "full_attention" : "sliding_attention");
    if (!regular) fail(label, ": layer_types is not a regular pattern of sliding layers with every N-th full");
  }
  if (pattern <= 0) fail(label, ": sliding_window_pattern must be positive");
  return pattern;
}

// Token-routed MoE settings: Mixtral (always renormalised), Qwen2-MoE (shared expert, dense
// layers by mlp_only_layers and decoder_sparse_step), OLMoE.
void read_moe_config(const json& cfg, const std::string& model_type, HParams& hp, const std::string& label) {
  if (model_type == "mixtral") {
    hp.n_expert = get_req<int>(cfg, "num_local_experts", label);
    hp.n_ff_exp = hp.n_ff;
    hp.expert_weights_norm = true;
  } else if (model_type == "olmoe") {
    hp.n_expert = get_req<int>(cfg, "num_experts", label);
    hp.n_ff_exp = hp.n_ff;
    hp.expert_weights_norm = get_or<bool>(cfg, "norm_topk_prob", false, label);
    if (cfg.contains("clip_qkv") && !cfg["clip_qkv"].is_null()) fail(label, ": clip_qkv is not supported");
  } else if (model_type == "qwen2_moe") {
    hp.n_expert = get_req<int>(cfg, "num_experts", label);
    hp.n_ff_exp = get_req<int>(cfg, "moe_intermediate_size", label);
    hp.n_ff_shexp = get_or<int>(cfg, "shared_expert_intermediate_size", 0, label);
    hp.expert_weights_norm = get_or<bool>(cfg, "norm_topk_prob", false, label);
    const int step = get_or<int>(cfg, "decoder_sparse_step", 1, label);
    if (step < 1) fail(label, ": decoder_sparse_step must be positive (got ", step, ")");
    std::vector<int> only = get_or<std::vector<int>>(cfg, "mlp_only_layers", {}, label);
    for (int il = 0; il < hp.n_layer; ++il)
      if (std::find(only.begin(), only.end(), il) != only.end() || (il + 1) % step != 0) hp.dense_layers.push_back(il);
  } else {
    return;
  }
  hp.n_expert_used = get_req<int>(cfg, "num_experts_per_tok", label);
  // Trained by moeforge with dynamic top-p routing (no transformers equivalent).
  hp.expert_top_p = get_or<float>(cfg, "moeforge_expert_top_p", 0.0f, label);
  hp.expert_max_used = get_or<int>(cfg, "moeforge_max_experts", 0, label);
  hp.n_expert_clusters = get_or<int>(cfg, "moeforge_expert_clusters", 0, label);
}

// MoDE (moeforge-trained): config.json's moeforge_mode describes the expert layers that follow
// the backbone's num_hidden_layers; hp.n_layer grows to count them.
void read_mode_config(const json& cfg, HParams& hp, ModeLayout& mode, const std::string& label) {
  if (!cfg.contains("moeforge_mode")) return;
  const json& m = cfg["moeforge_mode"];
  if (!m.is_object()) fail(label, ": moeforge_mode is not an object");
  const std::string where = label + ": moeforge_mode";
  mode.experts = get_req<std::vector<std::string>>(m, "experts", where);
  mode.n_block = get_req<int>(m, "blocks", where);
  mode.layers_per_expert = get_req<int>(m, "layers_per_expert", where);
  mode.gate_top_k = get_or<int>(m, "gate_top_k", 0, where);
  mode.n_layer_backbone = hp.n_layer;
  if (mode.experts.empty()) fail(where, ": no experts");
  if (mode.n_block < 1 || hp.n_layer % mode.n_block != 0)
    fail(where, ": blocks ", mode.n_block, " does not divide the backbone's ", hp.n_layer, " layers");
  if (mode.layers_per_expert < 1 || mode.gate_top_k < 0) fail(where, ": layers_per_expert and gate_top_k must be positive");
  if (hp.sliding_window > 0 || hp.n_expert > 0) fail(where, ": MoDE needs a dense backbone with full attention");
  hp.n_layer += mode.n_layer_extra();
}

}  // namespace

HParams hparams_from_hf_config(const json& cfg, ArchInfo* arch, const std::string& label) {
  if (!cfg.is_object()) fail(label, ": not a JSON object");
  std::string model_type = get_or<std::string>(cfg, "model_type", "", label);
  if (model_type.empty()) fail(label, ": missing 'model_type' (unknown architecture)");
  if (get_or<bool>(cfg, "mlp_bias", false, label)) fail(label, ": mlp_bias=true is not supported");
  *arch = arch_from_hf(model_type, get_or<bool>(cfg, "attention_bias", false, label), label);
  if (model_type == "qwen2_moe") arch->qkv_bias = get_or<bool>(cfg, "qkv_bias", true, label);

  HParams hp;
  hp.arch = arch->name;
  hp.n_vocab = get_req<int>(cfg, "vocab_size", label);
  hp.n_embd = get_req<int>(cfg, "hidden_size", label);
  hp.n_layer = get_req<int>(cfg, "num_hidden_layers", label);
  hp.n_head = get_req<int>(cfg, "num_attention_heads", label);
  hp.n_head_kv = get_or<int>(cfg, "num_key_value_heads", hp.n_head, label);
  hp.n_ff = get_req<int>(cfg, "intermediate_size", label);
  hp.head_dim = get_or<int>(cfg, "head_dim", hp.n_head > 0 ? hp.n_embd / hp.n_head : 0, label);
  hp.n_ctx_train = get_or<int>(cfg, "max_position_embeddings", 2048, label);
  hp.rms_eps = get_or<float>(cfg, "rms_norm_eps", 1e-6f, label);
  hp.tied_embeddings = get_or<bool>(cfg, "tie_word_embeddings", false, label);
  hp.rope_neox = true;
  // Mistral's sliding-window attention (null or absent: full). Qwen2 configs carry a
  // sliding_window that applies only with use_sliding_window, per layer: not supported.
  if (get_or<bool>(cfg, "use_sliding_window", false, label))
    fail(label, ": use_sliding_window (per-layer sliding windows) is not supported");
  if ((model_type == "mistral" || model_type == "mixtral") && cfg.contains("sliding_window") && !cfg["sliding_window"].is_null())
    hp.sliding_window = get_req<int>(cfg, "sliding_window", label);
  if (arch->name == "gemma3") {
    hp.tied_embeddings = get_or<bool>(cfg, "tie_word_embeddings", true, label);
    hp.sliding_window = get_or<int>(cfg, "sliding_window", 0, label);
    hp.swa_pattern = gemma3_layer_pattern(cfg, hp.n_layer, label);
    hp.rope_theta_swa = get_or<float>(cfg, "rope_local_base_freq", 10000.0f, label);
    hp.attn_scale = 1.0f / std::sqrt(get_or<float>(cfg, "query_pre_attn_scalar", float(hp.head_dim), label));
    hp.embd_scale = std::sqrt(float(hp.n_embd));
    for (const char* cap : {"final_logit_softcapping", "attn_logit_softcapping"})
      if (cfg.contains(cap) && !cfg[cap].is_null()) fail(label, ": ", cap, " is not supported");
    std::string act = get_or<std::string>(cfg, "hidden_activation", "gelu_pytorch_tanh", label);
    if (act != "gelu_pytorch_tanh") fail(label, ": hidden_activation '", act, "' is not supported (gelu_pytorch_tanh)");
  } else {
    std::string act = get_or<std::string>(cfg, "hidden_act", "silu", label);
    if (act != "silu") fail(label, ": hidden_act '", act, "' is not supported (silu only)");
  }

  // transformers >= 5 nests rope settings in rope_parameters; older versions use
  // rope_theta + rope_scaling at the top level.
  // Models with several layer types (Gemma 3) key rope_parameters by layer type.
  json rope = cfg.contains("rope_parameters") && cfg["rope_parameters"].is_object() ? cfg["rope_parameters"]
              : cfg.contains("rope_scaling") && cfg["rope_scaling"].is_object()   ? cfg["rope_scaling"]
                                                                                   : json::object();
  if (rope.contains("full_attention") && rope["full_attention"].is_object()) {
    if (rope.contains("sliding_attention") && rope["sliding_attention"].is_object())
      hp.rope_theta_swa = get_or<float>(rope["sliding_attention"], "rope_theta", hp.rope_theta_swa, label);
    rope = json(rope["full_attention"]);
  }
  hp.rope_theta = get_or<float>(rope, "rope_theta", get_or<float>(cfg, "rope_theta", 10000.0f, label), label);
  std::string rope_type = get_or<std::string>(rope, "rope_type", get_or<std::string>(rope, "type", "default", label), label);
  if (rope_type == "llama3") {
    hp.rope_scaling.type = "llama3";
    hp.rope_scaling.factor = get_req<float>(rope, "factor", label);
    hp.rope_scaling.low_freq_factor = get_or<float>(rope, "low_freq_factor", 1.0f, label);
    hp.rope_scaling.high_freq_factor = get_or<float>(rope, "high_freq_factor", 4.0f, label);
    hp.rope_scaling.original_max_pos = get_or<int>(rope, "original_max_position_embeddings", 8192, label);
  } else if (rope_type == "linear") {
    hp.rope_scaling.type = "linear";
    hp.rope_scaling.factor = get_req<float>(rope, "factor", label);
  } else if (rope_type != "default") {
    fail(label, ": rope_type '", rope_type, "' is not supported (default, llama3, linear)");
  }
  read_moe_config(cfg, model_type, hp, label);
  hp.validate(label);
  return hp;
}

void load_hf(Model& m, const std::string& dir) {
  std::string cfg_path = (fs::path(dir) / "config.json").string();
  std::ifstream f(cfg_path);
  if (!f) fail(cfg_path, ": cannot open");
  json cfg = json::parse(f, nullptr, false);
  if (cfg.is_discarded()) fail(cfg_path, ": malformed JSON");
  m.hp = hparams_from_hf_config(cfg, &m.arch, cfg_path);
  read_mode_config(cfg, m.hp, m.mode, cfg_path);
  m.format = "safetensors";
  auto ck = std::make_shared<SafetensorsCheckpoint>(SafetensorsCheckpoint::open(dir));
  m.storage.push_back(ck);
  TensorLookup lookup = [&](const std::string& name) {
    const SafetensorsTensor* t = ck->find(name);
    return t ? t->view : TensorView{};
  };
  // Some checkpoints tie embeddings without saying so: a missing lm_head means tied.
  if (!ck->find("lm_head.weight")) m.hp.tied_embeddings = true;
  bind_weights(m, lookup, /*use_gguf_names=*/false, dir);
  bind_mode_gates(m, lookup, /*use_gguf_names=*/false, dir);
}

}  // namespace mf
