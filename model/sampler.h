// Next-token sampling: greedy at temperature 0, else temperature + top-k + top-p.
#pragma once
#include <cstdint>
#include <random>
#include <vector>

namespace mf {

struct SamplerParams {
  float temperature = 0.8f;  // 0: greedy (argmax)
  int top_k = 40;            // <= 0: whole vocabulary
  float top_p = 0.95f;       // 1: disabled
  uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(const SamplerParams& p) : p_(p), rng_(p.seed) {}
  int32_t sample(const float* logits, int32_t n_vocab);

 private:
  SamplerParams p_;
  std::mt19937_64 rng_;
  std::vector<std::pair<float, int32_t>> cand_;
};

int32_t argmax(const float* x, int32_t n);

}  // namespace mf
