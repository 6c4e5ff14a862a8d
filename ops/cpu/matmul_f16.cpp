// f16 and bf16-weight matmuls. One token (decode): one sequential stream of rows per thread
// (rows_stream). Few tokens: convert weights on the fly inside the tile
// (each weight is converted once per 3-token tile, cheaper than a panel pass that streams
// rows without prefetch). More tokens: convert a 4-row weight panel
// to f32 once into an L1-resident buffer and run the f32 tiles over the token chunk.
#include <algorithm>
#include <vector>

#include "ops/cpu/gemm_tile.h"
#include "ops/cpu/matmul_impl.h"

namespace mf::ops::detail {

namespace {

// Up to this many tokens (decode and small continuous batches) skip the f32 panel.
constexpr int64_t kSmallBatchTokens = 8;

static_assert(kGroupMaxTokens <= kSmallBatchTokens, "rows_f16 is the small-batch path");

// Small batches: weights converted on the fly, rows [r0, r1).
template <class L>
void rows_half(const TensorView& w, const float* x, float* y, int64_t n_tokens, int64_t r0, int64_t r1) {
  const int64_t n_out = w.rows(), n_in = w.cols();
  const uint16_t* wd = static_cast<const uint16_t*>(w.data);  // [n_out, n_in]
  if (n_tokens == 1) return rows_stream<L>(wd + r0 * n_in, r1 - r0, x, y + r0, n_in);
  gemm_rows<L>(wd + r0 * n_in, n_in, r1 - r0, x, n_in, n_tokens, y + r0, n_out, n_in, false);
}

template <class L>
void matmul_half(const TensorView& w, const float* x, float* y, int64_t n_tokens, ThreadPool& pool) {
  const int64_t n_out = w.rows(), n_in = w.cols();
  const uint16_t* wd = static_cast<const uint16_t*>(w.data);  // [n_out, n_in]
  if (n_tokens <= kSmallBatchTokens) {
    for_rows(pool, n_out, kTileRows, int64_t(w.nbytes()) * n_tokens,
             [&](int, int64_t r0, int64_t r1) { rows_half<L>(w, x, y, n_tokens, r0, r1); });
    return;
  }
  const int64_t kc = k_slice(n_in);
  const int64_t tc = token_chunk(n_tokens);
  pool.parallel_for(n_out, kTileRows, [&](int, int64_t r0, int64_t r1) {
    thread_local std::vector<float> panel;  // [kTileRows, kc]
    panel.resize(size_t(kTileRows * kc));
    for (int64_t t0 = 0; t0 < n_tokens; t0 += tc) {
      const int64_t nt = std::min(tc, n_tokens - t0);
      for (int64_t k0 = 0; k0 < n_in; k0 += kc) {
        const int64_t kl = std::min(kc, n_in - k0);
        for (int64_t r = r0; r < r1; r += kTileRows) {
          const int64_t nr = std::min<int64_t>(kTileRows, r1 - r);
          for (int64_t i = 0; i < nr; ++i) {
            const uint16_t* src = wd + (r + i) * n_in + k0;
            float* dst = panel.data() + i * kc;
            int64_t j = 0;
            for (; j + 8 <= kl; j += 8) _mm256_storeu_ps(dst + j, L::load(src + j));
            if (j < kl) _mm256_storeu_ps(dst + j, load_tail<L>(src + j, int(kl - j)));  // panel rows are kc >= kl+pad long
          }
          gemm_rows<LoadF32>(panel.data(), kc, nr, x + t0 * n_in + k0, n_in, nt, y + t0 * n_out + r, n_out, kl, k0 > 0);
        }
      }
    }
  });
}

}  // namespace

void rows_f16(const TensorView& w, const float* x, float* y, int64_t n_tokens, int64_t r0, int64_t r1) {
  rows_half<LoadF16>(w, x, y, n_tokens, r0, r1);
}

void rows_bf16(const TensorView& w, const float* x, float* y, int64_t n_tokens, int64_t r0, int64_t r1) {
  rows_half<LoadBF16>(w, x, y, n_tokens, r0, r1);
}

void matmul_f16(const TensorView& w, const float* x, float* y, int64_t n_tokens, ThreadPool& pool) {
  matmul_half<LoadF16>(w, x, y, n_tokens, pool);
}

void matmul_bf16(const TensorView& w, const float* x, float* y, int64_t n_tokens, ThreadPool& pool) {
  matmul_half<LoadBF16>(w, x, y, n_tokens, pool);
}

}  // namespace mf::ops::detail
