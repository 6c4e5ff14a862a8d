#include "train/lora_torch.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "formats/atomic_file.h"
#include "formats/peft_config.h"
#include "formats/safetensors.h"
#include "train/checkpoint_tensor.h"

namespace mf {
namespace fs = std::filesystem;

TrainModelConfig model_config_from_hf(const std::string& dir, int64_t* n_vocab) {
  const std::string path = dir + "/config.json";
  std::ifstream f(path);
  if (!f) fail(path, ": cannot open (lora.base must be a Hugging Face directory)");
  const nlohmann::json j = nlohmann::json::parse(f, nullptr, false);
  if (j.is_discarded() || !j.is_object()) fail(path, ": malformed JSON");
  const std::string type = j.value("model_type", "");
  if (type != "llama" && type != "mistral" && type != "smollm")
    fail(path, ": model_type '", type, "': the trainer adapts Llama-architecture bases only");
  auto need = [&](const char* key) -> int64_t {
    if (!j.contains(key) || !j[key].is_number_integer()) fail(path, ": missing integer '", key, "'");
    return j[key].get<int64_t>();
  };
  TrainModelConfig m;
  m.n_embd = int(need("hidden_size"));
  m.n_layer = int(need("num_hidden_layers"));
  m.n_head = int(need("num_attention_heads"));
  m.n_head_kv = int(j.value("num_key_value_heads", int64_t(m.n_head)));
  m.n_ff = int(need("intermediate_size"));
  m.n_ctx = int(j.value("max_position_embeddings", int64_t(2048)));
  m.rope_theta = float(j.value("rope_theta", 10000.0));
  m.rms_eps = float(j.value("rms_norm_eps", 1e-5));
  m.tied_embeddings = j.value("tie_word_embeddings", false);
  if (j.contains("head_dim") && j["head_dim"].is_number_integer() && j["head_dim"].get<int64_t>() != m.n_embd / m.n_head)
    fail(path, ": head_dim ", j["head_dim"].get<int64_t>(), " differs from hidden_size / num_attention_heads (not supported)");
  if (j.contains("rope_scaling") && !j["rope_scaling"].is_null())
    fail(path, ": rope_scaling is not supported by the trainer");
  *n_vocab = need("vocab_size");
  return m;
}

void load_base_weights(LlamaLM& model, const std::string& dir) {
  SafetensorsCheckpoint ck = SafetensorsCheckpoint::open(dir);
  torch::NoGradGuard guard;
  for (auto& p : model->named_parameters()) p.value().copy_(checkpoint_tensor(ck, p.key(), p.value(), dir, "the base's config.json"));
}

namespace {

bool targeted(const TrainLoraConfig& cfg, const std::string& name) {
  for (const std::string& t : cfg.targets)
    if (t == "all" || t == name) return true;
  return false;
}

LoraPair attach(torch::nn::Linear& w, const TrainLoraConfig& cfg) {
  const int64_t n_in = w->weight.size(1), n_out = w->weight.size(0);
  LoraPair p;
  p.a = w->register_module("lora_A", torch::nn::Linear(torch::nn::LinearOptions(n_in, cfg.rank).bias(false)));
  p.b = w->register_module("lora_B", torch::nn::Linear(torch::nn::LinearOptions(cfg.rank, n_out).bias(false)));
  torch::NoGradGuard guard;
  p.b->weight.zero_();
  p.scale = cfg.rslora ? cfg.alpha / std::sqrt(double(cfg.rank)) : cfg.alpha / double(cfg.rank);
  p.dropout = cfg.dropout;
  return p;
}

}  // namespace

std::vector<torch::Tensor> attach_lora(LlamaLM& model, const TrainLoraConfig& cfg, uint64_t seed) {
  for (auto& p : model->parameters()) p.set_requires_grad(false);
  torch::manual_seed(seed);
  for (auto& layer : *model->model->layers) {
    auto* block = layer->as<Block>();
    auto* at = block->self_attn.get();
    if (targeted(cfg, "q_proj")) at->q_lora = attach(at->q_proj, cfg);
    if (targeted(cfg, "k_proj")) at->k_lora = attach(at->k_proj, cfg);
    if (targeted(cfg, "v_proj")) at->v_lora = attach(at->v_proj, cfg);
    if (targeted(cfg, "o_proj")) at->o_lora = attach(at->o_proj, cfg);
    if (!block->mlp) {
      if (targeted(cfg, "gate_proj") || targeted(cfg, "up_proj") || targeted(cfg, "down_proj"))
        fail("LoRA on a MoE layer's experts is not supported (target the attention maps)");
      continue;
    }
    auto* mlp = block->mlp.get();
    if (targeted(cfg, "gate_proj")) mlp->gate_lora = attach(mlp->gate_proj, cfg);
    if (targeted(cfg, "up_proj")) mlp->up_lora = attach(mlp->up_proj, cfg);
    if (targeted(cfg, "down_proj")) mlp->down_lora = attach(mlp->down_proj, cfg);
  }
  std::vector<torch::Tensor> trainable;
  for (auto& p : model->named_parameters())
    if (p.key().find(".lora_") != std::string::npos) trainable.push_back(p.value());
  return trainable;
}

std::vector<torch::Tensor> attach_gated_lora(LlamaLM& model, TrainLoraConfig& cfg, uint64_t seed) {
  const std::string dir = cfg.gates_for, config = dir + "/adapter_config.json";
  std::ifstream f(config);
  if (!f) fail(config, ": cannot open (lora.gates_for must be a trained PEFT adapter)");
  const nlohmann::json j = nlohmann::json::parse(f, nullptr, false);
  if (j.is_discarded() || !j.contains("r") || !j.contains("lora_alpha") || !j.contains("target_modules"))
    fail(config, ": not a LoRA adapter_config.json (r, lora_alpha, target_modules)");
  cfg.rank = j["r"].get<int>();
  cfg.alpha = j["lora_alpha"].get<double>();
  cfg.rslora = j.value("use_rslora", false);
  cfg.targets = j["target_modules"].get<std::vector<std::string>>();
  attach_lora(model, cfg, seed);
  SafetensorsCheckpoint ck = SafetensorsCheckpoint::open(dir + "/adapter_model.safetensors");
  torch::NoGradGuard guard;
  int loaded = 0;
  for (auto& p : model->named_parameters()) {
    if (p.key().find(".lora_") == std::string::npos) continue;
    p.value().copy_(checkpoint_tensor(ck, "base_model.model." + p.key(), p.value(), dir, "the base"));
    p.value().set_requires_grad(false);
    ++loaded;
  }
  if (loaded == 0) fail(dir, ": no LoRA factors matched the base");
  std::vector<torch::Tensor> gates;
  auto add_gate = [&](torch::nn::Linear& w, LoraPair& pair) {
    if (!pair.a) return;
    pair.gate = w->register_parameter("lora_gate", torch::zeros({w->weight.size(1)}));  // [n_in], sigmoid(0) = 1/2
    gates.push_back(pair.gate);
  };
  for (auto& layer : *model->model->layers) {
    auto* block = layer->as<Block>();
    auto* at = block->self_attn.get();
    add_gate(at->q_proj, at->q_lora);
    add_gate(at->k_proj, at->k_lora);
    add_gate(at->v_proj, at->v_lora);
    add_gate(at->o_proj, at->o_lora);
    if (!block->mlp) continue;
    auto* mlp = block->mlp.get();
    add_gate(mlp->gate_proj, mlp->gate_lora);
    add_gate(mlp->up_proj, mlp->up_lora);
    add_gate(mlp->down_proj, mlp->down_lora);
  }
  return gates;
}

void export_peft(LlamaLM& model, const TrainLoraConfig& cfg, const std::string& out_dir) {
  std::vector<torch::Tensor> keep;  // contiguous f32 copies the views point into
  std::vector<std::pair<std::string, TensorView>> tensors, gates;
  std::vector<std::string> modules;
  for (auto& p : model->named_parameters()) {
    const std::string& name = p.key();  // model.layers.0.self_attn.q_proj.lora_A.weight
    const size_t at = name.find(".lora_");
    if (at == std::string::npos) continue;
    keep.push_back(p.value().detach().to(torch::kFloat32).contiguous());
    const torch::Tensor& t = keep.back();
    if (t.dim() == 1) {  // a PHATGOOSE gate
      gates.emplace_back("base_model.model." + name + ".weight", make_view(DType::F32, {t.size(0)}, t.data_ptr<float>()));
      continue;
    }
    tensors.emplace_back("base_model.model." + name, make_view(DType::F32, {t.size(0), t.size(1)}, t.data_ptr<float>()));
    const std::string module = name.substr(0, at);
    const std::string short_name = module.substr(module.rfind('.') + 1);
    if (std::find(modules.begin(), modules.end(), short_name) == modules.end()) modules.push_back(short_name);
  }
  if (tensors.empty()) fail("export_peft: the model has no LoRA weights");
  PeftLoraConfig pc;
  pc.rank = cfg.rank;
  pc.alpha = cfg.alpha;
  pc.rslora = cfg.rslora;
  pc.target_modules = modules;
  pc.base_model = cfg.base;
  pc.dropout = cfg.dropout;
  fs::create_directories(out_dir);
  write_safetensors(out_dir + "/adapter_model.safetensors", tensors);
  if (!gates.empty()) write_safetensors(out_dir + "/gates.safetensors", gates);
  const std::string text = peft_lora_config_json(pc).dump(2) + "\n";
  AtomicFile f(out_dir + "/adapter_config.json");
  f.write(text.data(), text.size());
  f.commit();
}

}  // namespace mf
