// k-quant prefill kernel on 8-row groups repacked per call (as gemm_q32_x8.cpp): each
// super-block of 8 rows becomes 64 k-slices of unsigned codes (slice k: elements 4k..4k+3 of
// the 8 rows), 16 scale vectors (int32 lane r = row r's scale of that 16-value sub-block,
// in both int16 halves), 8 min vectors (lane r = row r's (mn[2i], mn[2i+1]) as int16) and the
// rows' d and dmin. Per token and 16-value sub-block: 4 maddubs on broadcast activation
// bytes, their int16 sum (<= 4 * 2 * 31 * 127 for codes < 32; 6-bit q6_K codes madd every
// 2 slices: 2 * 2 * 63 * 127), one madd with the scales: every int32 lane is one row, so
// there are no horizontal sums. The minimum (or code-offset) term is 8 madds with the bsums.
// Integer results equal the dot-product kernels' (matmul_kquant.cpp) exactly.
#include <immintrin.h>

#include <cstring>
#include <vector>

#include "ops/cpu/kquant_decode.h"
#include "ops/cpu/quant_acts.h"
#include "ops/cpu/repack_x8.h"

namespace mf::ops::detail {

namespace {

constexpr int kSlices = kQK / 4;                       // 64 per super-block
constexpr int kSlicesBytes = kSlices * 32;             // 2048
constexpr int kScalesBytes = 16 * 32;                  // 16 scale vectors
constexpr int kMinsBytes = 8 * 32;                     // 8 min vectors
constexpr int kPanelBytes = kSlicesBytes + kScalesBytes + kMinsBytes + 16 * 4;  // + d[8], dmin[8]
constexpr int kTokens = 4;                             // tokens per register tile

template <DType T>
constexpr bool k6Bit = T == DType::Q6_K;

template <DType T>
void repack_superblock(const uint8_t* w, size_t ldw, int64_t b, uint8_t* out) {
  using Block = typename KQuant<T>::Block;
  KBlock k[8];
  for (int r = 0; r < 8; ++r) KQuant<T>::decode(reinterpret_cast<const Block*>(w + r * ldw)[b], k[r]);
  for (int g = 0; g < 8; ++g) {
    __m256i u[8];
    for (int r = 0; r < 8; ++r) u[r] = k[r].q[g];
    transpose_x8(u, out + g * 8 * 32);  // slices 8g..8g+7
  }
  alignas(16) int8_t sc[8][16];
  alignas(32) int16_t mn[8][16];
  for (int r = 0; r < 8; ++r) {
    _mm_store_si128(reinterpret_cast<__m128i*>(sc[r]), k[r].sc);
    _mm256_store_si256(reinterpret_cast<__m256i*>(mn[r]), k[r].mn);
  }
  auto* scales = reinterpret_cast<uint32_t*>(out + kSlicesBytes);  // [16][8]
  auto* mins = reinterpret_cast<uint32_t*>(out + kSlicesBytes + kScalesBytes);  // [8][8]
  for (int r = 0; r < 8; ++r) {
    for (int j = 0; j < 16; ++j) scales[j * 8 + r] = uint16_t(int16_t(sc[r][j])) * 0x10001u;
    for (int i = 0; i < 8; ++i) mins[i * 8 + r] = uint16_t(mn[r][2 * i]) | uint32_t(uint16_t(mn[r][2 * i + 1])) << 16;
  }
  auto* d = reinterpret_cast<float*>(out + kSlicesBytes + kScalesBytes + kMinsBytes);
  for (int r = 0; r < 8; ++r) d[r] = k[r].d, d[8 + r] = k[r].dmin;
}

inline __m256i load(const uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }

// y[t, 0..8) for NT tokens from a repacked panel of nb super-blocks.
template <DType T, int NT>
void tile_x8(const uint8_t* panel, const QuantizedActs& xa, int64_t t0, float* y, int64_t ldy) {
  const int64_t nb = xa.n_blocks;
  __m256 yacc[NT];
#pragma GCC unroll 4
  for (int t = 0; t < NT; ++t) yacc[t] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* pb = panel + b * kPanelBytes;
    const int8_t* xb[NT];
#pragma GCC unroll 4
    for (int t = 0; t < NT; ++t) xb[t] = xa.qs + ((t0 + t) * nb + b) * kQK;
    __m256i acc[NT];
#pragma GCC unroll 4
    for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_si256();
    for (int j = 0; j < 16; ++j) {  // 16-value sub-blocks
      const __m256i sv = load(pb + kSlicesBytes + 32 * j);
      const uint8_t* sl = pb + 4 * j * 32;
#pragma GCC unroll 4
      for (int t = 0; t < NT; ++t) {
        const int8_t* x = xb[t] + 16 * j;
        __m256i p0 = _mm256_maddubs_epi16(load(sl), broadcast4(x));
        p0 = _mm256_add_epi16(p0, _mm256_maddubs_epi16(load(sl + 32), broadcast4(x + 4)));
        __m256i p1 = _mm256_maddubs_epi16(load(sl + 64), broadcast4(x + 8));
        p1 = _mm256_add_epi16(p1, _mm256_maddubs_epi16(load(sl + 96), broadcast4(x + 12)));
        if constexpr (k6Bit<T>) {
          acc[t] = _mm256_add_epi32(acc[t], _mm256_add_epi32(_mm256_madd_epi16(p0, sv), _mm256_madd_epi16(p1, sv)));
        } else {
          acc[t] = _mm256_add_epi32(acc[t], _mm256_madd_epi16(_mm256_add_epi16(p0, p1), sv));
        }
      }
    }
    const uint8_t* pm = pb + kSlicesBytes + kScalesBytes;
    const float* d = reinterpret_cast<const float*>(pm + kMinsBytes);
#pragma GCC unroll 4
    for (int t = 0; t < NT; ++t) {
      const int64_t i = (t0 + t) * nb + b;
      const int16_t* bs = xa.bsums + i * 16;
      __m256i m = _mm256_setzero_si256();
      for (int k = 0; k < 8; ++k)
        m = _mm256_add_epi32(m, _mm256_madd_epi16(load(pm + 32 * k), broadcast4(reinterpret_cast<const int8_t*>(bs + 2 * k))));
      const __m256 dx = _mm256_broadcast_ss(xa.d + i);
      if constexpr (KQuant<T>::kMins) {
        yacc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[t]), _mm256_mul_ps(_mm256_loadu_ps(d), dx), yacc[t]);
        yacc[t] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(m), _mm256_mul_ps(_mm256_loadu_ps(d + 8), dx), yacc[t]);
      } else {
        yacc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(acc[t], m)), _mm256_mul_ps(_mm256_loadu_ps(d), dx),
                                  yacc[t]);
      }
    }
  }
#pragma GCC unroll 4
  for (int t = 0; t < NT; ++t) _mm256_storeu_ps(y + t * ldy, yacc[t]);
}

template <DType T>
void gemm_x8(const uint8_t* w, size_t ldw, int64_t n_rows, const QuantizedActs& xa, int64_t t0, int64_t nt, float* y,
             int64_t ldy) {
  const int64_t nb = xa.n_blocks;
  thread_local std::vector<uint8_t> panel;  // [nb, kPanelBytes]
  panel.resize(size_t(nb * kPanelBytes));
  for (int64_t r = 0; r < n_rows; r += 8) {
    for (int64_t b = 0; b < nb; ++b) repack_superblock<T>(w + r * ldw, ldw, b, panel.data() + b * kPanelBytes);
    float* yr = y + r;  // [nt, ldy]
    int64_t t = 0;
    for (; t + kTokens <= nt; t += kTokens) tile_x8<T, kTokens>(panel.data(), xa, t0 + t, yr + t * ldy, ldy);
    switch (nt - t) {
      case 3: tile_x8<T, 3>(panel.data(), xa, t0 + t, yr + t * ldy, ldy); break;
      case 2: tile_x8<T, 2>(panel.data(), xa, t0 + t, yr + t * ldy, ldy); break;
      case 1: tile_x8<T, 1>(panel.data(), xa, t0 + t, yr + t * ldy, ldy); break;
      default: break;
    }
  }
}

}  // namespace

void gemm_kquant_x8(DType t, const uint8_t* w, size_t ldw, int64_t n_rows, const QuantizedActs& xa, int64_t t0,
                    int64_t nt, float* y, int64_t ldy) {
  switch (t) {
    case DType::Q2_K: return gemm_x8<DType::Q2_K>(w, ldw, n_rows, xa, t0, nt, y, ldy);
    case DType::Q3_K: return gemm_x8<DType::Q3_K>(w, ldw, n_rows, xa, t0, nt, y, ldy);
    case DType::Q4_K: return gemm_x8<DType::Q4_K>(w, ldw, n_rows, xa, t0, nt, y, ldy);
    case DType::Q5_K: return gemm_x8<DType::Q5_K>(w, ldw, n_rows, xa, t0, nt, y, ldy);
    case DType::Q6_K: return gemm_x8<DType::Q6_K>(w, ldw, n_rows, xa, t0, nt, y, ldy);
    default: return;
  }
}

}  // namespace mf::ops::detail
