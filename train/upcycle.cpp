#include "train/upcycle.h"

#include "core/error.h"
#include "formats/safetensors.h"
#include "ops/ops.h"

namespace mf {

namespace {

// The named tensor of the checkpoint as f32, shaped like `like` (mf::Error otherwise).
torch::Tensor tensor_from(const SafetensorsCheckpoint& ck, const std::string& name, const torch::Tensor& like,
                          const std::string& dir) {
  const SafetensorsTensor* t = ck.find(name);
  if (!t) fail(dir, ": missing tensor '", name, "' (needed to upcycle)");
  const TensorView& v = t->view;
  std::vector<int64_t> shape(v.shape.begin(), v.shape.begin() + v.n_dims);
  if (shape != like.sizes().vec())
    fail(dir, ": tensor '", name, "' has shape ", v.shape_str(), ", the MoE model needs ", like.sizes());
  auto out = torch::empty(shape, torch::kFloat32);
  for (int64_t r = 0; r < v.rows(); ++r) ref::dequantize_row(v.dtype, v.row(r), out.data_ptr<float>() + r * v.cols(), v.cols());
  return out;
}

}  // namespace

void upcycle_from_dense(LlamaLM& model, const std::string& dense_dir) {
  SafetensorsCheckpoint ck = SafetensorsCheckpoint::open(dense_dir);
  torch::NoGradGuard guard;
  for (auto& p : model->named_parameters())
    if (ck.find(p.key())) p.value().copy_(tensor_from(ck, p.key(), p.value(), dense_dir));
  int il = 0;
  for (auto& layer : *model->model->layers) {
    MoeFfn moe = layer->as<Block>()->moe;  // a shared handle
    const std::string base = "model.layers." + std::to_string(il++) + ".mlp.";
    if (!moe) continue;
    auto* e0 = moe->experts[0]->as<ExpertMlp>();
    moe->upcycle_from(tensor_from(ck, base + "gate_proj.weight", e0->gate->weight, dense_dir),
                      tensor_from(ck, base + "up_proj.weight", e0->up->weight, dense_dir),
                      tensor_from(ck, base + "down_proj.weight", e0->down->weight, dense_dir));
  }
}

}  // namespace mf
