// The Sampler the server and `generate` use: sampling over the whole vocabulary (top_k 0, the
// server's default) must pick the same tokens as sorting the whole vocabulary did, and
// temperatures too small for float must behave as greedy.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "model/sampler.h"

namespace mf {
namespace {

// The Sampler as it was before it stopped sorting the vocabulary: sort every candidate by
// scaled logit, softmax over the top k, nucleus prefix, one uniform draw walked in order.
class ReferenceSampler {
 public:
  explicit ReferenceSampler(const SamplerParams& p) : p_(p), rng_(p.seed) {}
  int32_t sample(const float* logits, int32_t n_vocab) {
    if (p_.temperature <= 0.0f) return argmax(logits, n_vocab);
    std::vector<std::pair<float, int32_t>> cand(static_cast<size_t>(n_vocab));
    for (int32_t i = 0; i < n_vocab; ++i) cand[size_t(i)] = {logits[i] / p_.temperature, i};
    int32_t k = (p_.top_k > 0 && p_.top_k < n_vocab) ? p_.top_k : n_vocab;
    auto by_logit = [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); };
    std::partial_sort(cand.begin(), cand.begin() + k, cand.end(), by_logit);
    cand.resize(size_t(k));
    float max = cand[0].first;
    double sum = 0;
    for (auto& c : cand) sum += (c.first = std::exp(c.first - max));
    double cum = 0;
    size_t keep = cand.size();
    for (size_t i = 0; i < cand.size(); ++i) {
      cum += cand[i].first / sum;
      if (cum >= p_.top_p) {
        keep = i + 1;
        break;
      }
    }
    cand.resize(keep);
    double total = 0;
    for (auto& c : cand) total += c.first;
    double r = std::uniform_real_distribution<double>(0.0, total)(rng_);
    for (auto& c : cand) {
      r -= c.first;
      if (r <= 0) return c.second;
    }
    return cand.back().second;
  }

 private:
  SamplerParams p_;
  std::mt19937_64 rng_;
};

std::vector<float> random_logits(std::mt19937& rng, int32_t n, float scale) {
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> x(static_cast<size_t>(n));
  for (float& v : x) v = d(rng);
  return x;
}

TEST(Sampler, WholeVocabularyPicksWhatTheFullSortPicked) {
  std::mt19937 rng(42);
  const int32_t V = 3001;  // not a multiple of the sort stages
  int deep = 0;            // draws that landed beyond the first 1024 candidates
  for (float temperature : {0.3f, 1.0f, 2.0f}) {
    for (float top_p : {1.0f, 0.95f, 0.5f, 0.0f}) {
      for (int top_k : {0, -1, 3001, 50}) {
        for (float scale : {0.5f, 3.0f}) {  // flat and peaked distributions
          SamplerParams p;
          p.temperature = temperature;
          p.top_p = top_p;
          p.top_k = top_k;
          p.seed = uint64_t(rng());
          Sampler s(p);
          ReferenceSampler ref(p);
          for (int step = 0; step < 20; ++step) {
            std::vector<float> logits = random_logits(rng, V, scale);
            const int32_t want = ref.sample(logits.data(), V);
            ASSERT_EQ(s.sample(logits.data(), V), want)
                << "temperature " << temperature << " top_p " << top_p << " top_k " << top_k << " scale " << scale << " step " << step;
            std::vector<float> sorted = logits;
            std::sort(sorted.begin(), sorted.end(), std::greater<float>());
            if (logits[size_t(want)] < sorted[1024]) ++deep;
          }
        }
      }
    }
  }
  EXPECT_GT(deep, 0);  // the last sort stage was exercised too
}

TEST(Sampler, GreedyIsTheFirstLargest) {
  const std::vector<float> logits = {0.5f, 2.0f, -1.0f, 2.0f, 1.9f};
  SamplerParams p;
  p.temperature = 0.0f;
  Sampler s(p);
  EXPECT_EQ(s.sample(logits.data(), int32_t(logits.size())), 1);
  EXPECT_EQ(argmax(logits.data(), int32_t(logits.size())), 1);
}

TEST(Sampler, TemperatureTooSmallForFloatIsGreedy) {
  // 5 / 1e-39 overflows to inf: inf - inf made every probability NaN and the draw returned
  // the least likely candidate.
  const std::vector<float> logits = {1.0f, 5.0f, -3.0f, 4.9f, 0.0f};
  for (float t : {1e-39f, 1e-30f, 1e-6f}) {
    SamplerParams p;
    p.temperature = t;
    p.top_k = 0;
    p.top_p = 1.0f;
    for (uint64_t seed = 0; seed < 20; ++seed) {
      p.seed = seed;
      Sampler s(p);
      EXPECT_EQ(s.sample(logits.data(), int32_t(logits.size())), 1) << "temperature " << t << " seed " << seed;
    }
    p.top_k = 3;
    Sampler s(p);
    EXPECT_EQ(s.sample(logits.data(), int32_t(logits.size())), 1) << "temperature " << t << " top_k 3";
  }
}

}  // namespace
}  // namespace mf
