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
    auto* e0 = moe->experts[0]->as<ExpertMlp>();
    moe->upcycle_from(checkpoint_tensor(ck, base + "gate_proj.weight", e0->gate->weight, dense_dir, "the MoE model"),
                      checkpoint_tensor(ck, base + "up_proj.weight", e0->up->weight, dense_dir, "the MoE model"),
                      checkpoint_tensor(ck, base + "down_proj.weight", e0->down->weight, dense_dir, "the MoE model"));
  }
}

}  // namespace mf
