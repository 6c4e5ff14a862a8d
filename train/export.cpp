#include "train/export.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"
#include "formats/safetensors.h"
#include "tokenizer/tokenizer.h"
#include "train/mode_torch.h"

namespace mf {
namespace fs = std::filesystem;

namespace {

void write_text_atomic(const std::string& path, const std::string& text) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary);
    f << text;
    if (!f) fail(path, ": write failed");
  }
  fs::rename(tmp, path);
}

}  // namespace

void export_hf(LlamaLM& model, const std::string& tokenizer_json, const std::string& dir) {
  const TrainModelConfig& c = model->cfg;
  TokenizerSpec tok = load_hf_tokenizer_spec(tokenizer_json);
  fs::create_directories(dir);

  std::vector<torch::Tensor> keep;  // contiguous f32 copies backing the views
  std::vector<std::pair<std::string, TensorView>> tensors;
  // Layers whose cluster gate (MO-CTE) never found cluster structure route as plain MoE layers.
  std::set<std::string> skip;
  auto add = [&](const std::string& name, const torch::Tensor& value) {
    auto t = value.detach().to(torch::kFloat32).contiguous();
    keep.push_back(t);
    TensorView v;
    v.dtype = DType::F32;
    v.n_dims = int(t.dim());
    for (int i = 0; i < v.n_dims; ++i) v.shape[i] = t.size(i);
    v.data = t.data_ptr<float>();
    tensors.emplace_back(name, v);
  };
  int il = 0;
  for (MoeFfn m : model->moe_layers()) {  // a shared handle
    const bool mixtral = m->cfg.n_ff_shared == 0;
    const std::string base = "model.layers." + std::to_string(il++) + (mixtral ? ".block_sparse_moe." : ".mlp.");
    skip.insert(base + "cluster_active");
    if (!m->clustered()) skip.insert({base + "cluster_gate.weight", base + "cluster_gate.bias"});
    if (!m->expert_base) continue;
    // LoRA-like experts export merged (W + scale B A), as the ordinary experts of the layout.
    for (const auto& p : m->named_parameters())
      if (p.key().starts_with("expert_base.") || p.key().starts_with("experts.")) skip.insert(base + p.key());
    const std::array<const char*, 3> names = expert_projection_names(mixtral);
    for (size_t e = 0; e < m->experts->size(); ++e) {
      const std::array<torch::Tensor, 3> w = m->experts[e]->as<ExpertMlp>()->merged_weights();
      for (size_t i = 0; i < 3; ++i) add(base + "experts." + std::to_string(e) + "." + names[i] + ".weight", w[i]);
    }
  }
  for (auto& p : model->named_parameters())
    if (!skip.count(p.key())) add(mode_export_name(model, p.key()), p.value());
  write_safetensors(dir + "/model.safetensors", tensors);

  nlohmann::ordered_json cfg = {
      {"architectures", {"LlamaForCausalLM"}},
      {"model_type", "llama"},
      {"vocab_size", model->n_vocab},
      {"hidden_size", c.n_embd},
      {"intermediate_size", c.n_ff},
      {"num_hidden_layers", c.n_layer},
      {"num_attention_heads", c.n_head},
      {"num_key_value_heads", c.n_head_kv},
      {"head_dim", c.n_embd / c.n_head},
      {"max_position_embeddings", c.n_ctx},
      {"rms_norm_eps", c.rms_eps},
      {"rope_theta", c.rope_theta},
      {"hidden_act", "silu"},
      {"attention_bias", false},
      {"mlp_bias", false},
      {"tie_word_embeddings", c.tied_embeddings},
      {"bos_token_id", tok.bos_id},
      {"eos_token_id", tok.eos_id},
      {"torch_dtype", "float32"},
  };
  if (c.moe.enabled()) {
    // Mixtral's layout, or Qwen2-MoE's when there is a shared expert (attention without biases).
    const TrainMoeConfig& e = c.moe;
    const bool qwen = e.n_ff_shared > 0;
    cfg["architectures"] = {qwen ? "Qwen2MoeForCausalLM" : "MixtralForCausalLM"};
    cfg["model_type"] = qwen ? "qwen2_moe" : "mixtral";
    cfg["num_experts_per_tok"] = e.top_k;
    if (qwen) {
      cfg["num_experts"] = e.n_expert;
      cfg["moe_intermediate_size"] = c.n_ff_expert();
      cfg["shared_expert_intermediate_size"] = e.n_ff_shared;
      cfg["norm_topk_prob"] = e.renormalize;
      cfg["qkv_bias"] = false;
      cfg["mlp_only_layers"] = nlohmann::json::array();
      cfg["decoder_sparse_step"] = 1;
    } else {
      cfg["num_local_experts"] = e.n_expert;
      cfg["intermediate_size"] = c.n_ff_expert();
    }
    // Cluster-oriented routing (MO-CTE) has no transformers equivalent either: layers with a
    // cluster_gate route within the cluster it picks (moeforge reads the key).
    if (e.clusters > 0) cfg["moeforge_expert_clusters"] = e.clusters;
    // Dynamic top-p has no transformers equivalent (it runs top-k); moeforge reads these keys.
    if (e.top_p > 0) {
      cfg["moeforge_expert_top_p"] = e.top_p;
      cfg["moeforge_max_experts"] = e.max_experts;
    }
  }
  if (model->mode) {
    // MoDE: the expert layers follow the backbone's as model.layers.(n_layer + I), I = (expert *
    // blocks + block) * layers_per_expert + layer; transformers has no equivalent (docs/mode.md).
    const ModeImpl& m = *model->mode;
    cfg["moeforge_mode"] = {{"experts", m.experts},
                            {"blocks", m.n_block},
                            {"layers_per_expert", m.k},
                            {"gate_top_k", m.gate_top_k},
                            {"backbone_fingerprint", backbone_fingerprint(model)}};
  }
  write_text_atomic(dir + "/config.json", cfg.dump(2) + "\n");
  fs::path src = fs::path(tokenizer_json).parent_path();
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"}) {
    fs::path from = f == std::string("tokenizer.json") ? fs::path(tokenizer_json) : src / f;
    if (fs::exists(from) && fs::absolute(from) != fs::absolute(fs::path(dir) / f))
      write_text_atomic(dir + "/" + f, [&] {
        std::ifstream in(from, std::ios::binary);
        return std::string(std::istreambuf_iterator<char>(in), {});
      }());
  }
}

}  // namespace mf
