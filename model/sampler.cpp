#include "model/sampler.h"

#include <algorithm>
#include <cmath>

namespace mf {

int32_t argmax(const float* x, int32_t n) { return int32_t(std::max_element(x, x + n) - x); }

int32_t Sampler::sample(const float* logits, int32_t n_vocab) {
  if (p_.temperature <= 0.0f) return argmax(logits, n_vocab);
  cand_.resize(n_vocab);
  for (int32_t i = 0; i < n_vocab; ++i) cand_[i] = {logits[i] / p_.temperature, i};
  int32_t k = (p_.top_k > 0 && p_.top_k < n_vocab) ? p_.top_k : n_vocab;
  auto by_logit = [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); };
  std::partial_sort(cand_.begin(), cand_.begin() + k, cand_.end(), by_logit);
  cand_.resize(k);
  // Softmax over the top-k, then keep the smallest prefix whose mass reaches top_p.
  float max = cand_[0].first;
  double sum = 0;
  for (auto& c : cand_) sum += (c.first = std::exp(c.first - max));
  double cum = 0;
  size_t keep = cand_.size();
  for (size_t i = 0; i < cand_.size(); ++i) {
    cum += cand_[i].first / sum;
    if (cum >= p_.top_p) {
      keep = i + 1;
      break;
    }
  }
  cand_.resize(keep);
  double total = 0;
  for (auto& c : cand_) total += c.first;
  double r = std::uniform_real_distribution<double>(0.0, total)(rng_);
  for (auto& c : cand_) {
    r -= c.first;
    if (r <= 0) return c.second;
  }
  return cand_.back().second;
}

}  // namespace mf
