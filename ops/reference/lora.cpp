// Scalar definition of the LoRA update (ops/lora.h).
#include <vector>

#include "core/half.h"

#include "ops/lora.h"

namespace mf::ref {
namespace {
float at(const void* p, bool f16, int64_t i) {
  return f16 ? fp16_to_f32(static_cast<const uint16_t*>(p)[i]) : static_cast<const float*>(p)[i];
}
}  // namespace

void lora_add(std::span<const LoraFactors> adapters, std::span<const LoraTerm> terms, const float* x, int64_t n_in,
              float* y, int64_t n_out) {
  std::vector<float> t;
  for (const LoraTerm& term : terms) {
    const LoraFactors& f = adapters[size_t(term.adapter)];
    const float* xr = x + int64_t(term.row) * n_in;  // [n_in]
    t.assign(size_t(f.rank), 0.0f);                  // [rank] = A x
    for (int64_t j = 0; j < f.rank; ++j)
      for (int64_t i = 0; i < n_in; ++i) t[size_t(j)] += at(f.a, f.f16, j * n_in + i) * xr[i];
    float* yr = y + int64_t(term.row) * n_out;  // [n_out] += coef * B t
    for (int64_t o = 0; o < n_out; ++o) {
      float s = 0.0f;
      for (int64_t j = 0; j < f.rank; ++j) s += at(f.bt, f.f16, j * n_out + o) * t[size_t(j)];
      yr[o] += term.coef * s;
    }
  }
}

}  // namespace mf::ref
