#include "train/mode_torch.h"

#include <cmath>
#include <fstream>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "formats/atomic_file.h"
#include "formats/safetensors.h"
#include "train/checkpoint_tensor.h"

namespace mf {

ModeImpl::ModeImpl(const TrainModelConfig& c, const TrainModeConfig& m, std::vector<std::string> experts_)
    : experts(std::move(experts_)),
      n_block(m.blocks),
      k(m.layers_per_expert),
      n_layer_backbone(c.n_layer),
      // Stage 1's two-way gate is always dense: a top-1 of backbone-or-expert would never pick
      // (nor train) an expert that starts behind the backbone.
      gate_top_k(m.gate == "top_k" && m.stage == 2 ? m.gate_top_k : 0) {
  TrainModelConfig dense = c;
  dense.moe = TrainMoeConfig{};
  layers = register_module("layers", torch::nn::ModuleList());
  for (int i = 0; i < n_expert() * n_block * k; ++i) layers->push_back(Block(dense));
  gates = register_module("gates", torch::nn::ModuleList());
  torch::NoGradGuard guard;
  for (int b = 0; b < n_block; ++b) {
    torch::nn::Linear g(torch::nn::LinearOptions(c.n_embd, 1 + n_expert()).bias(true));
    g->weight.zero_();  // a constant mix (attach_mode sets the bias) until the gate learns
    g->bias.zero_();
    gates->push_back(g);
  }
}

torch::Tensor ModeImpl::gate_weights(int b, const torch::Tensor& x) {
  auto* g = gates[size_t(b)]->as<torch::nn::Linear>();
  auto a = torch::softmax(g->forward(x), -1);  // [.., 1 + N]
  if (gate_top_k > 0 && gate_top_k < 1 + n_expert()) {
    auto top = std::get<1>(a.topk(gate_top_k, -1));                       // [.., k]
    auto keep = torch::zeros_like(a).scatter(-1, top, 1.0);                // [.., 1 + N]
    a = a * keep;
    a = a / a.sum(-1, true);                                               // [.., 1 + N]
  }
  return a;
}

torch::Tensor ModeImpl::mix(int b, const torch::Tensor& x, const torch::Tensor& h_bb, const torch::Tensor& cos,
                            const torch::Tensor& sin) {
  auto a = gate_weights(b, x);               // [B, T, 1 + N]
  if (record) recorded.push_back(a.detach().reshape({-1, 1 + n_expert()}).mean(0));  // [1 + N]
  auto y = a.narrow(-1, 0, 1) * h_bb;        // [B, T, E]
  for (int j = 0; j < n_expert(); ++j) {
    auto h = x;                              // [B, T, E]
    for (int l = 0; l < k; ++l) h = layer(j, b, l).forward(h, cos, sin);
    y = y + a.narrow(-1, j + 1, 1) * h;      // [B, T, E]
  }
  return y;
}

std::string backbone_fingerprint(LlamaLM& model) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a 64
  for (auto& p : model->named_parameters()) {
    if (p.key().rfind("mode.", 0) == 0) continue;
    for (char c : p.key()) h = (h ^ uint8_t(c)) * 1099511628211ull;
    auto t = p.value().detach().to(torch::kFloat32).contiguous();
    const auto* bytes = static_cast<const uint8_t*>(t.data_ptr());
    for (size_t i = 0, n = size_t(t.numel()) * sizeof(float); i < n; ++i) h = (h ^ bytes[i]) * 1099511628211ull;
  }
  std::ostringstream o;
  o << std::hex << std::setw(16) << std::setfill('0') << h;
  return o.str();
}

std::string mode_export_name(const LlamaLM& model, const std::string& key) {
  const std::string layers = "mode.layers.", gates = "mode.gates.";
  if (key.rfind(layers, 0) == 0) {
    const size_t dot = key.find('.', layers.size());
    const int i = std::stoi(key.substr(layers.size(), dot - layers.size()));
    return "model.layers." + std::to_string(model->cfg.n_layer + i) + key.substr(dot);
  }
  if (key.rfind(gates, 0) == 0) return "model.mode_gates." + key.substr(gates.size());
  return key;
}

namespace {

// Stage 1, init "copy": expert layer l of block b starts as the backbone layer at the same
// relative depth (the block's last layers when k is smaller than the block).
void copy_backbone_layers(LlamaLM& model, ModeImpl& mode) {
  torch::NoGradGuard guard;
  const int size = mode.first_layer(1) - mode.first_layer(0);
  for (int b = 0; b < mode.n_block; ++b)
    for (int l = 0; l < mode.k; ++l) {
      const int src = mode.first_layer(b) + ((l + 1) * size) / mode.k - 1;
      auto from = model->model->layers[size_t(src)]->named_parameters();
      for (auto& p : mode.layer(0, b, l).named_parameters()) p.value().copy_(from[p.key()]);
    }
}

void init_random_layers(LlamaLM& model, ModeImpl& mode, uint64_t seed) {
  torch::manual_seed(seed);
  torch::NoGradGuard guard;
  const double resid_std = 0.02 / std::sqrt(2.0 * (model->cfg.n_layer + mode.n_block * mode.k));
  for (auto& p : mode.layers->named_parameters()) {
    const std::string& n = p.key();
    if (n.find("norm") != std::string::npos) p.value().fill_(1.0);
    else if (n.find("o_proj") != std::string::npos || n.find("down_proj") != std::string::npos) p.value().normal_(0, resid_std);
    else p.value().normal_(0, 0.02);
  }
}

struct StageOneExpert {
  std::string dir;
  nlohmann::json mode;  // its config.json's moeforge_mode
};

StageOneExpert read_stage_one(const std::string& dir, const std::string& name, const TrainModeConfig& cfg,
                              const std::string& fingerprint, int n_layer) {
  const std::string path = dir + "/config.json";
  std::ifstream f(path);
  if (!f) fail(path, ": cannot open (mode.expert_dirs.", name, " must be a finished stage-1 run)");
  const nlohmann::json j = nlohmann::json::parse(f, nullptr, false);
  if (j.is_discarded() || !j.is_object()) fail(path, ": malformed JSON");
  if (!j.contains("moeforge_mode") || !j["moeforge_mode"].is_object()) fail(path, ": not a MoDE expert (no moeforge_mode)");
  const nlohmann::json& m = j["moeforge_mode"];
  const auto experts = m.value("experts", std::vector<std::string>{});
  if (experts != std::vector<std::string>{name})
    fail(path, ": holds expert(s) ", nlohmann::json(experts).dump(), ", stage 2 expects the single expert \"", name, "\"");
  if (m.value("blocks", 0) != cfg.blocks || m.value("layers_per_expert", 0) != cfg.layers_per_expert)
    fail(path, ": trained with ", m.value("blocks", 0), " blocks of ", m.value("layers_per_expert", 0),
         " expert layers, this run has ", cfg.blocks, " of ", cfg.layers_per_expert);
  if (j.value("num_hidden_layers", 0) != n_layer || m.value("backbone_fingerprint", "") != fingerprint)
    fail(path, ": trained for another backbone (fingerprint ", m.value("backbone_fingerprint", "?"), ", ",
         j.value("num_hidden_layers", 0), " layers; this run's backbone ", cfg.backbone, " is ", fingerprint, ", ",
         n_layer, " layers)");
  return {dir, m};
}

// Stage 2: expert j's layers from its stage-1 run; the composed gate's rows from the stage-1
// two-way gates (row 0, the backbone: their mean; row j + 1: expert j's).
void load_stage_one_experts(LlamaLM& model, ModeImpl& mode, const TrainModeConfig& cfg, const std::string& fingerprint) {
  torch::NoGradGuard guard;
  const int L = model->cfg.n_layer;
  for (int j = 0; j < mode.n_expert(); ++j) {
    const std::string& name = mode.experts[size_t(j)];
    StageOneExpert e = read_stage_one(cfg.expert_dirs.at(name), name, cfg, fingerprint, L);
    SafetensorsCheckpoint ck = SafetensorsCheckpoint::open(e.dir);
    const std::string who = "expert '" + name + "'";
    for (int b = 0; b < mode.n_block; ++b) {
      for (int l = 0; l < mode.k; ++l)
        for (auto& p : mode.layer(j, b, l).named_parameters()) {
          const std::string src = "model.layers." + std::to_string(L + b * mode.k + l) + "." + p.key();
          p.value().copy_(checkpoint_tensor(ck, src, p.value(), e.dir, who));
        }
      auto* g = mode.gates[size_t(b)]->as<torch::nn::Linear>();
      const std::string gate = "model.mode_gates." + std::to_string(b);
      auto w = checkpoint_tensor(ck, gate + ".weight", torch::zeros({2, g->weight.size(1)}), e.dir, who);  // [2, E]
      auto bias = checkpoint_tensor(ck, gate + ".bias", torch::zeros({2}), e.dir, who);                   // [2]
      g->weight[0] += w[0] / mode.n_expert();
      g->bias[0] += bias[0] / mode.n_expert();
      g->weight[j + 1].copy_(w[1]);
      g->bias[j + 1].copy_(bias[1]);
    }
  }
}

}  // namespace

std::vector<torch::Tensor> attach_mode(LlamaLM& model, const TrainModeConfig& cfg, uint64_t seed) {
  const int L = model->cfg.n_layer;
  if (cfg.blocks > L || L % cfg.blocks != 0)
    fail(cfg.backbone, ": mode.blocks ", cfg.blocks, " does not divide the backbone's ", L, " layers");
  for (auto& p : model->parameters()) p.set_requires_grad(false);
  const std::string fingerprint = backbone_fingerprint(model);
  auto mode = model->register_module("mode", std::make_shared<ModeImpl>(model->cfg, cfg, cfg.run_experts()));
  model->mode = mode;
  if (cfg.stage == 1) {
    // The gate starts at weight gate_init on the backbone: an even mix of a deep backbone with
    // a layer that is not its block sends the first loss far above the backbone's.
    torch::NoGradGuard guard;
    for (auto& g : *mode->gates) g->as<torch::nn::Linear>()->bias[0].fill_(std::log(cfg.gate_init / (1 - cfg.gate_init)));
    if (cfg.init == "copy")
      copy_backbone_layers(model, *mode);
    else
      init_random_layers(model, *mode, seed);
    return mode->parameters();
  }
  load_stage_one_experts(model, *mode, cfg, fingerprint);
  std::vector<torch::Tensor> trainable = mode->gates->parameters();
  if (cfg.train_experts)
    for (auto& p : mode->layers->parameters()) trainable.push_back(p);
  else
    for (auto& p : mode->layers->parameters()) p.set_requires_grad(false);
  return trainable;
}

void write_gate_report(LlamaLM& model, const std::vector<std::pair<std::string, torch::Tensor>>& batches,
                       const std::string& csv) {
  ModeImpl& mode = *model->mode;
  torch::NoGradGuard guard;
  const bool was_training = model->is_training();
  model->eval();
  std::ostringstream out;
  out << "domain,block,backbone";
  for (const std::string& e : mode.experts) out << "," << e;
  out << "\n";
  for (const auto& [domain, tokens] : batches) {
    mode.recorded.clear();
    mode.record = true;
    model->forward(tokens);  // mix() keeps each block's mean gate weights
    mode.record = false;
    for (int b = 0; b < mode.n_block; ++b) {
      out << domain << "," << b;
      for (int i = 0; i <= mode.n_expert(); ++i) out << "," << mode.recorded[size_t(b)][i].item<double>();
      out << "\n";
    }
  }
  AtomicFile file(csv);
  const std::string text = out.str();
  file.write(text.data(), text.size());
  file.commit();
  if (was_training) model->train();
}

}  // namespace mf
