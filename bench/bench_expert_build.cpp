// Google Benchmark of the expert build's dense-algebra stages on SmolLM2-135M's FFN shape
// (n_embd 576, n_ff 1536): the structured-OBS removal order (obs_scores, run once per layer
// on the dense statistics) and the gate-up row re-fit (refit_rows, once per layer and round of
// a sequential re-fit). Random moments: the cost does not depend on the values.
//   build/bin/bench_ops --benchmark_filter='obs|refit_rows'
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <random>
#include <vector>

#include "core/thread_pool.h"
#include "moe/down_refit.h"
#include "moe/row_refit.h"

namespace {

constexpr int64_t kEmbd = 576, kFf = 1536;

// Gram matrix and sums [n_ff, n_ff], [n_ff] of `tokens` random SwiGLU-like activations.
struct Moments {
  std::vector<float> w, gram, sum;
  int64_t tokens;
};
Moments random_moments(int64_t tokens) {
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  Moments m{std::vector<float>(size_t(kEmbd * kFf)), std::vector<float>(size_t(kFf * kFf), 0.0f),
            std::vector<float>(size_t(kFf), 0.0f), tokens};
  for (float& v : m.w) v = nd(rng) * 0.05f;
  std::vector<float> a(static_cast<size_t>(kFf));  // [n_ff] one token's activations
  for (int64_t t = 0; t < tokens; ++t) {
    for (float& v : a) v = nd(rng) * nd(rng);
    for (int64_t i = 0; i < kFf; ++i) {
      m.sum[size_t(i)] += a[size_t(i)];
      for (int64_t j = 0; j < kFf; ++j) m.gram[size_t(i * kFf + j)] += a[size_t(i)] * a[size_t(j)];
    }
  }
  return m;
}

void BM_obs_scores(benchmark::State& state) {
  static const Moments m = random_moments(2048);
  for (auto _ : state) {
    std::vector<double> s = mf::obs_scores(m.w, kEmbd, kFf, m.gram.data(), m.sum.data(), m.tokens, 1e-3);
    benchmark::DoNotOptimize(s.data());
  }
}
BENCHMARK(BM_obs_scores)->Unit(benchmark::kMillisecond)->UseRealTime();

// Half the neurons kept, 8192 tokens (4 chunks), a fixed number of conjugate-gradient iterations.
void BM_refit_rows(benchmark::State& state) {
  const int64_t T = 8192, k = kFf / 2;
  std::mt19937 rng(9);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  auto random = [&](int64_t n, float scale) {
    std::vector<float> v(static_cast<size_t>(n));
    for (float& x : v) x = nd(rng) * scale;
    return v;
  };
  const std::vector<float> x = random(T * kEmbd, 1.0f), y = random(T * kEmbd, 0.1f), gate = random(k * kEmbd, 0.05f),
                           up = random(k * kEmbd, 0.05f), down = random(kEmbd * k, 0.05f), bias(size_t(kEmbd), 0.0f);
  mf::RowRefitOptions o;
  o.gate = true;
  o.max_iterations = int(state.range(0));
  o.tolerance = 0;  // always the full count
  mf::ThreadPool pool(std::getenv("MF_BENCH_THREADS") ? std::atoi(std::getenv("MF_BENCH_THREADS")) : 2);
  for (auto _ : state) {
    mf::RowRefit r = mf::refit_rows(x, y, T, kEmbd, gate, up, down, bias, k, o, &pool);
    benchmark::DoNotOptimize(r.up.data());
  }
}
BENCHMARK(BM_refit_rows)->Arg(5)->ArgName("iterations")->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
