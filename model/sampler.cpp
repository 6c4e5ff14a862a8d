#include "model/sampler.h"

#include <algorithm>
#include <cmath>

#include "ops/ops.h"

namespace mf {

// The first index of the largest value (vectorised: greedy decoding of small models is
// otherwise measurably slowed by this scan over the vocabulary).
int32_t argmax(const float* x, int32_t n) { return int32_t(ops::argmax(x, n)); }

namespace {

// Candidates in descending order of scaled logit, ties by ascending token id.
bool by_logit(const std::pair<float, int32_t>& a, const std::pair<float, int32_t>& b) {
  return a.first > b.first || (a.first == b.first && a.second < b.second);
}

}  // namespace

int32_t Sampler::sample(const float* logits, int32_t n_vocab) {
  if (p_.temperature <= 0.0f) return argmax(logits, n_vocab);
  cand_.resize(n_vocab);
  float max = -INFINITY;
  for (int32_t i = 0; i < n_vocab; ++i) {
    cand_[i] = {logits[i] / p_.temperature, i};
    max = std::max(max, cand_[i].first);
  }
  // A temperature so small that logit / temperature overflows: the limit is greedy (and
  // exp(inf - inf) would poison every probability with NaN).
  if (std::isinf(max)) return argmax(logits, n_vocab);

  if (p_.top_k > 0 && p_.top_k < n_vocab) {
    const int32_t k = p_.top_k;
    std::partial_sort(cand_.begin(), cand_.begin() + k, cand_.end(), by_logit);
    cand_.resize(k);
    // Softmax over the top-k, then keep the smallest prefix whose mass reaches top_p.
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

  // The whole vocabulary (top_k <= 0): the same walks in descending order as above, but the
  // order is only built as far as they reach instead of sorting the whole vocabulary for every
  // token: the top 64 (a selection pass, then a sort of 64), then the top 1024, then the rest.
  // The walks usually end in the first stage; the worst case costs about one full sort.
  // The sum runs in index order, so it may differ from the sorted-order sum in its last bits.
  // Probabilities are recomputed where needed.
  const size_t n = cand_.size();
  size_t sorted = 0;  // cand_[0, sorted) is the sorted prefix; the rest are all smaller
  auto sorted_up_to = [&](size_t i) {  // makes cand_[i] part of the sorted prefix
    if (i < sorted) return;
    const size_t end = i < 64 ? std::min<size_t>(n, 64) : i < 1024 ? std::min<size_t>(n, 1024) : n;
    if (end < n) std::nth_element(cand_.begin() + sorted, cand_.begin() + end, cand_.end(), by_logit);  // O(n)
    std::sort(cand_.begin() + sorted, cand_.begin() + end, by_logit);
    sorted = end;
  };
  auto prob = [&](size_t i) { return std::exp(cand_[i].first - max); };  // unnormalised, as a float
  double sum = 0;
  for (size_t i = 0; i < n; ++i) sum += prob(i);
  size_t keep = n;
  double total = sum;
  if (p_.top_p < 1.0f) {  // the smallest prefix whose mass reaches top_p (1: all of them)
    double cum = 0;
    total = 0;
    for (size_t i = 0; i < n; ++i) {
      sorted_up_to(i);
      const float e = prob(i);
      total += e;
      cum += e / sum;
      if (cum >= p_.top_p) {
        keep = i + 1;
        break;
      }
    }
  }
  double r = std::uniform_real_distribution<double>(0.0, total)(rng_);
  for (size_t i = 0; i < keep; ++i) {
    sorted_up_to(i);
    r -= prob(i);
    if (r <= 0) return cand_[i].second;
  }
  sorted_up_to(keep - 1);
  return cand_[keep - 1].second;
}

}  // namespace mf
