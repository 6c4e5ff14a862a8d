// Memory bandwidth of this machine, the bound for memory-bound decode: a STREAM-like copy
// and a read-only AVX2 sum over a buffer far larger than the caches, on 1 and 2 threads.
// bytes_per_second counts bytes moved (copy: read + write, as STREAM does).
#include <benchmark/benchmark.h>
#include <immintrin.h>

#include <cstring>
#include <vector>

#include "core/thread_pool.h"

namespace {

constexpr size_t kBytes = size_t(512) << 20;  // 512 MiB: well past any cache

std::vector<float>& buffer(int which) {
  static std::vector<float> bufs[2] = {std::vector<float>(kBytes / 4, 1.0f), std::vector<float>(kBytes / 4, 2.0f)};
  return bufs[which];
}

void BM_ReadBandwidth(benchmark::State& state) {
  mf::ThreadPool pool(int(state.range(0)));
  const float* src = buffer(0).data();
  const int64_t n = int64_t(kBytes / 4);
  std::vector<float> partial(pool.size(), 0.0f);
  for (auto _ : state) {
    pool.parallel_for(n, 1 << 16, [&](int t, int64_t b, int64_t e) {
      __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
      for (int64_t i = b; i < e; i += 32) {
        a0 = _mm256_add_ps(a0, _mm256_loadu_ps(src + i));
        a1 = _mm256_add_ps(a1, _mm256_loadu_ps(src + i + 8));
        a2 = _mm256_add_ps(a2, _mm256_loadu_ps(src + i + 16));
        a3 = _mm256_add_ps(a3, _mm256_loadu_ps(src + i + 24));
      }
      __m256 s = _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
      float tmp[8];
      _mm256_storeu_ps(tmp, s);
      partial[t] += tmp[0];
    });
    benchmark::DoNotOptimize(partial.data());
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(kBytes));
}
BENCHMARK(BM_ReadBandwidth)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_CopyBandwidth(benchmark::State& state) {
  mf::ThreadPool pool(int(state.range(0)));
  const float* src = buffer(0).data();
  float* dst = buffer(1).data();
  const int64_t n = int64_t(kBytes / 4);
  for (auto _ : state) {
    pool.parallel_for(n, 1 << 16, [&](int, int64_t b, int64_t e) { std::memcpy(dst + b, src + b, size_t(e - b) * 4); });
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(2 * kBytes));
}
BENCHMARK(BM_CopyBandwidth)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
