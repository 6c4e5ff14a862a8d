#include "train/upcycle.h"

#include "core/error.h"
#include "train/checkpoint_tensor.h"

namespace mf {


void upcycle_from_dense(LlamaLM& model, const std::string& dense_dir) {
  SafetensorsCheckpoint ck = SafetensorsCheckpoint::open(dense_dir);
  torch::NoGradGuard guard;
  for (auto& p : model->named_parameters())
    if (ck.find(p.key())) p.value().copy_(checkpoint_tensor(ck, p.key(), p.value(), dense_dir, "the MoE model"));
  int il = 0;
  for (auto& layer : *model->model->layers) {
    MoeFfn moe = layer->as<Block>()->moe;  // a shared handle
    const std::string base = "model.layers." + std::to_string(il++) + ".mlp.";
    if (!moe) continue;
    ExpertMlpImpl& e0 = moe->weight_holder();
    moe->upcycle_from(checkpoint_tensor(ck, base + "gate_proj.weight", e0.gate->weight, dense_dir, "the MoE model"),
                      checkpoint_tensor(ck, base + "up_proj.weight", e0.up->weight, dense_dir, "the MoE model"),
                      checkpoint_tensor(ck, base + "down_proj.weight", e0.down->weight, dense_dir, "the MoE model"));
  }
}

void branch_train_mix(LlamaLM& model, const std::vector<std::string>& dirs) {
  if (int(dirs.size()) != model->cfg.moe.n_expert)
    fail("model.moe.branch_from names ", dirs.size(), " branches for ", model->cfg.moe.n_expert, " experts");
  std::vector<SafetensorsCheckpoint> branches;
  for (const std::string& d : dirs) branches.push_back(SafetensorsCheckpoint::open(d));
  torch::NoGradGuard guard;
  for (auto& p : model->named_parameters()) {
    if (!branches[0].find(p.key())) continue;  // expert and router tensors: below, or fresh
    auto sum = torch::zeros_like(p.value());
    for (size_t b = 0; b < dirs.size(); ++b) sum += checkpoint_tensor(branches[b], p.key(), p.value(), dirs[b], "the MoE model");
    p.value().copy_(sum / double(dirs.size()));  // [..] the branches' mean
  }
  int il = 0;
  for (auto& layer : *model->model->layers) {
    MoeFfn moe = layer->as<Block>()->moe;
    const std::string base = "model.layers." + std::to_string(il++) + ".mlp.";
    if (!moe) continue;
    for (size_t e = 0; e < dirs.size(); ++e) {
      auto* x = moe->experts[e]->as<ExpertMlp>();
      x->gate->weight.copy_(checkpoint_tensor(branches[e], base + "gate_proj.weight", x->gate->weight, dirs[e], "expert " + std::to_string(e)));
      x->up->weight.copy_(checkpoint_tensor(branches[e], base + "up_proj.weight", x->up->weight, dirs[e], "expert " + std::to_string(e)));
      x->down->weight.copy_(checkpoint_tensor(branches[e], base + "down_proj.weight", x->down->weight, dirs[e], "expert " + std::to_string(e)));
    }
  }
}

}  // namespace mf
