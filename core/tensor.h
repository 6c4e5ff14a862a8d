// A non-owning view of a tensor: dtype, shape (outermost first, like PyTorch) and data.
// Weights are [n_out, n_in] row-major; quantised rows hold n_in/32 blocks.
#pragma once
#include <array>
#include <cassert>
#include <cstdint>
#include <string>

#include "core/dtype.h"

namespace mf {

struct TensorView {
  DType dtype = DType::F32;
  int n_dims = 0;
  std::array<int64_t, 4> shape{1, 1, 1, 1};  // shape[0] is the outermost dimension
  const void* data = nullptr;

  int64_t numel() const {
    int64_t n = 1;
    for (int i = 0; i < n_dims; ++i) n *= shape[i];
    return n;
  }
  int64_t rows() const { return n_dims <= 1 ? 1 : numel() / shape[n_dims - 1]; }
  int64_t cols() const { return n_dims == 0 ? 1 : shape[n_dims - 1]; }
  size_t row_stride() const { return row_bytes(dtype, cols()); }
  size_t nbytes() const { return size_t(rows()) * row_stride(); }
  const uint8_t* row(int64_t r) const { return static_cast<const uint8_t*>(data) + r * row_stride(); }
  const float* f32() const {
    assert(dtype == DType::F32);
    return static_cast<const float*>(data);
  }
  // Rows [first, first+count) of a 2-D view: an expert's neuron range without copying.
  TensorView row_range(int64_t first, int64_t count) const {
    assert(n_dims == 2 && first + count <= shape[0]);
    TensorView v = *this;
    v.shape[0] = count;
    v.data = row(first);
    return v;
  }
  std::string shape_str() const {
    std::string s = "[";
    for (int i = 0; i < n_dims; ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
  }
};

inline TensorView make_view(DType t, std::initializer_list<int64_t> shape, const void* data) {
  TensorView v;
  v.dtype = t;
  v.n_dims = int(shape.size());
  int i = 0;
  for (int64_t d : shape) v.shape[i++] = d;
  v.data = data;
  return v;
}

}  // namespace mf
