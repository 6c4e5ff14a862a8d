#include "train/checkpoint_tensor.h"

#include "core/error.h"
#include "ops/ops.h"

namespace mf {

torch::Tensor checkpoint_tensor(const SafetensorsCheckpoint& ck, const std::string& name, const torch::Tensor& like,
                                const std::string& dir, const std::string& who) {
  const SafetensorsTensor* t = ck.find(name);
  if (!t) fail(dir, ": missing tensor '", name, "' (needed by ", who, ")");
  const TensorView& v = t->view;
  std::vector<int64_t> shape(v.shape.begin(), v.shape.begin() + v.n_dims);
  if (shape != like.sizes().vec()) fail(dir, ": tensor '", name, "' has shape ", v.shape_str(), ", ", who, " needs ", like.sizes());
  auto out = torch::empty(shape, torch::kFloat32);
  for (int64_t r = 0; r < v.rows(); ++r) ref::dequantize_row(v.dtype, v.row(r), out.data_ptr<float>() + r * v.cols(), v.cols());
  return out;
}

}  // namespace mf
