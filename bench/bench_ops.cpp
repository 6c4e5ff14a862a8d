// Google Benchmark of ops::matmul on the SmolLM2-135M shapes (hidden 576, ffn 1536,
// vocab 49152) with 2 threads, and of every GGUF block type (BM_matmul_qtypes). Decode (1 token) and small batches (4 tokens) report weight
// bytes streamed per second; prefill (128 tokens) reports FLOP/s (2 * n_out * n_in *
// n_tokens per call).
// Decode cycles through enough copies of the weights (>= 256 MiB) that they come from
// DRAM, as in a real forward pass; "hot" repeats one copy that stays in cache.
//   build-ops/bin/bench_ops --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdlib>
#include <iterator>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "ops/ops.h"

namespace {

using mf::DType;

// 2 threads (the target machine), or MF_BENCH_THREADS.
mf::ThreadPool& pool() {
  static mf::ThreadPool p(std::getenv("MF_BENCH_THREADS") ? std::atoi(std::getenv("MF_BENCH_THREADS")) : 2);
  return p;
}

const DType kTypes[] = {DType::F32,  DType::F16,  DType::BF16, DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q5_0,
                        DType::Q5_1, DType::Q2_K, DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K};

// Byte offsets of the fp16 scales of a block of the types from q4_1 on (whose benchmark
// weights are random blocks: speed does not depend on the values).
std::vector<size_t> half_fields(DType t) {
  switch (t) {
    case DType::Q4_1: case DType::Q5_1: case DType::Q4_K: case DType::Q5_K: return {0, 2};
    case DType::Q5_0: return {0};
    case DType::Q2_K: return {offsetof(mf::BlockQ2_K, d), offsetof(mf::BlockQ2_K, dmin)};
    case DType::Q3_K: return {offsetof(mf::BlockQ3_K, d)};
    case DType::Q6_K: return {offsetof(mf::BlockQ6_K, d)};
    default: return {};
  }
}

// n_copies quantised copies of a random [n_out, n_in] weight matrix.
std::vector<uint8_t> make_weights(DType t, int64_t n_out, int64_t n_in, int n_copies) {
  const size_t rb = mf::row_bytes(t, n_in);
  std::vector<uint8_t> w(rb * size_t(n_out) * size_t(n_copies));
  std::mt19937 rng(42);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> row(static_cast<size_t>(n_in));
  const bool random_blocks = mf::is_quantized(t) && t != DType::Q8_0 && t != DType::Q4_0;
  for (int64_t o = 0; o < n_out && !random_blocks; ++o) {
    for (auto& v : row) v = dist(rng);
    mf::ref::quantize_row(t, row.data(), w.data() + size_t(o) * rb, n_in);
  }
  if (random_blocks) {
    for (size_t i = 0; i < rb * size_t(n_out); ++i) w[i] = uint8_t(rng());
    for (size_t b = 0; b < rb * size_t(n_out) / mf::block_bytes(t); ++b)
      for (size_t off : half_fields(t)) {
        const uint16_t h = 0x2000;  // 2^-7
        std::memcpy(&w[b * mf::block_bytes(t) + off], &h, 2);
      }
  }
  for (int c = 1; c < n_copies; ++c) std::memcpy(w.data() + c * rb * size_t(n_out), w.data(), rb * size_t(n_out));
  return w;
}

// Args: dtype index, n_out, n_in, n_tokens, cold (1: weights from DRAM).
void BM_matmul(benchmark::State& state) {
  const DType t = kTypes[state.range(0)];
  const int64_t n_out = state.range(1), n_in = state.range(2), nt = state.range(3);
  const bool cold = state.range(4) != 0;
  const size_t bytes = mf::row_bytes(t, n_in) * size_t(n_out);
  const int n_copies = cold ? int((size_t(256) << 20) / bytes + 1) : 1;
  const auto w = make_weights(t, n_out, n_in, n_copies);
  std::vector<float> x(size_t(nt * n_in)), y(size_t(nt * n_out));
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (auto& v : x) v = dist(rng);
  int c = 0;
  for (auto _ : state) {
    const auto view = mf::make_view(t, {n_out, n_in}, w.data() + size_t(c) * bytes);
    mf::ops::matmul(view, x.data(), y.data(), nt, pool());
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
    c = (c + 1) % n_copies;
  }
  state.SetLabel(std::string(mf::dtype_name(t)) + (cold ? " cold" : " hot"));
  state.counters["GB/s"] = benchmark::Counter(double(bytes) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["GFLOP/s"] =
      benchmark::Counter(2e-9 * double(n_out * n_in * nt), benchmark::Counter::kIsIterationInvariantRate);
}

void matmul_args(benchmark::internal::Benchmark* b) {
  const int64_t shapes[][2] = {{576, 576}, {1536, 576}, {576, 1536}, {49152, 576}};  // {n_out, n_in}
  // 1 token: decode; 4: a small continuous batch (serving), weights from DRAM; 128: prefill.
  for (int64_t nt : {1, 4, 128})
    for (int ti : {0, 1, 3, 4})  // f32, f16, q8_0, q4_0
      for (const auto& s : shapes) {
        if (nt < 128) b->Args({ti, s[0], s[1], nt, 1});
        if (nt != 4) b->Args({ti, s[0], s[1], nt, 0});
      }
  for (const auto& s : shapes) b->Args({2, s[0], s[1], 1, 1}), b->Args({2, s[0], s[1], 128, 0});  // bf16
  b->ArgNames({"type", "n_out", "n_in", "n_tokens", "cold"});
  b->UseRealTime();
}
BENCHMARK(BM_matmul)->Apply(matmul_args);

// The GGUF block types (q4_0 and q8_0 for comparison) on SmolLM2's down projection
// (576 x 1536) and Gemma 3 270M's (640 x 2048): decode (1 token, weights from DRAM) and a
// 64-token prefill chunk (hot).
void qtype_args(benchmark::internal::Benchmark* b) {
  const int64_t shapes[][2] = {{576, 1536}, {640, 2048}};  // {n_out, n_in}
  for (int64_t nt : {1, 64})
    for (int ti = 3; ti < int(std::size(kTypes)); ++ti)
      for (const auto& s : shapes) b->Args({ti, s[0], s[1], nt, nt == 1 ? 1 : 0});
  b->ArgNames({"type", "n_out", "n_in", "n_tokens", "cold"});
  b->UseRealTime();
}
BENCHMARK(BM_matmul)->Name("BM_matmul_qtypes")->Apply(qtype_args);

void BM_attention(benchmark::State& state) {
  // SmolLM2-135M heads: 9 query, 3 kv, head_dim 64.
  mf::AttentionParams p;
  p.n_tokens = state.range(0), p.n_past = state.range(1), p.n_head = 9, p.n_head_kv = 3, p.head_dim = 64;
  p.scale = 0.125f;
  const int64_t n_kv = p.n_past + p.n_tokens;
  std::vector<float> q(size_t(p.n_tokens * 9 * 64), 0.1f), k(size_t(n_kv * 3 * 64), 0.2f), v(k.size(), 0.3f),
      out(q.size());
  for (auto _ : state) {
    mf::ops::attention(q.data(), k.data(), v.data(), out.data(), p, pool());
    benchmark::DoNotOptimize(out.data());
  }
  // q.k and p.v: 2 FLOP each per (head, query, visible key, dim).
  double flop = 0;
  for (int64_t t = 0; t < p.n_tokens; ++t) flop += 4.0 * 9 * 64 * double(p.n_past + t + 1);
  state.counters["GFLOP/s"] = benchmark::Counter(flop * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_attention)->Args({1, 511})->Args({128, 0})->Args({512, 0})->ArgNames({"n_tokens", "n_past"})->UseRealTime();

// The fixed cost of one parallel job: post it, every thread runs a trivial chunk, the caller
// sees them all done. Decode pays it about 5 times per layer, so at SmolLM2's 152 jobs per token
// this times 152 is the per-token hand-off cost. Arg: values each chunk writes (0: none; 288:
// half of a 576-wide output, which the caller then reads, as the next serial op does).
void BM_parallel_for_handoff(benchmark::State& state) {
  const int64_t n = state.range(0);
  std::vector<int32_t> y(size_t(std::max<int64_t>(n, 1) * pool().size()), 0);  // ints: both loops vectorise
  int32_t sum = 0;
  for (auto _ : state) {
    pool().parallel_for(pool().size(), 1, [&](int, int64_t b, int64_t e) {
      for (int64_t c = b; c < e; ++c)
        for (int64_t i = 0; i < n; ++i) y[size_t(c * n + i)] += 1;
    });
    for (int64_t i = 0; i < n * pool().size(); ++i) sum += y[size_t(i)];  // the caller reads what the others wrote
    benchmark::DoNotOptimize(sum);
  }
}
BENCHMARK(BM_parallel_for_handoff)->Arg(0)->Arg(288)->UseRealTime();

}  // namespace
