// Vectorised q8_0 / q8_1 / q8_K quantisation (activations of quantised matmuls) and
// dequantisation of the weight types, plus the public ops::quantize_row / ops::dequantize_row.
#include <immintrin.h>

#include <cassert>
#include <cmath>
#include <cstring>

#include "core/half.h"
#include "ops/cpu/kquant_decode.h"
#include "ops/cpu/quant_acts.h"
#include "ops/cpu/simd.h"
#include "ops/ops.h"

namespace mf::ops {

namespace detail {

namespace {

// roundf semantics (half away from zero), which _mm256_round_ps does not offer.
inline __m256 round_away(__m256 v) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  const __m256 frac = _mm256_andnot_ps(sign, _mm256_sub_ps(v, t));  // exact
  const __m256 up = _mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ);
  const __m256 one = _mm256_or_ps(_mm256_and_ps(v, sign), _mm256_set1_ps(1.0f));  // +-1
  return _mm256_add_ps(t, _mm256_and_ps(up, one));
}

// Quantises 32 floats; returns the f32 scale (unrounded) and writes 32 int8 and their sum.
inline float quantize_block(const float* x, int8_t* qs, int* sum) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 v[4];
  for (int i = 0; i < 4; ++i) v[i] = _mm256_loadu_ps(x + 8 * i);
  __m256 amax = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v[0]), _mm256_andnot_ps(sign, v[1])),
                              _mm256_max_ps(_mm256_andnot_ps(sign, v[2]), _mm256_andnot_ps(sign, v[3])));
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  const float d = _mm_cvtss_f32(m) / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  const __m256 idv = _mm256_set1_ps(id);
  __m256i q[4];
  for (int i = 0; i < 4; ++i) q[i] = _mm256_cvtps_epi32(round_away(_mm256_mul_ps(v[i], idv)));
  // Sum of the 32 quantised values.
  __m256i s = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
  __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
  s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
  s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1));
  *sum = _mm_cvtsi128_si32(s4);
  // Packing works within 128-bit lanes; the final permute restores element order.
  const __m256i p16a = _mm256_packs_epi32(q[0], q[1]);
  const __m256i p16b = _mm256_packs_epi32(q[2], q[3]);
  const __m256i p8 = _mm256_packs_epi16(p16a, p16b);
  const __m256i ordered = _mm256_permutevar8x32_epi32(p8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(qs), ordered);
  return d;
}

}  // namespace

void quantize_row_q8_0(const float* x, void* dst, int64_t n) {
  auto* blocks = static_cast<BlockQ8_0*>(dst);
  for (int64_t b = 0; b < n / kQBlock; ++b) {
    int sum;
    blocks[b].d = f32_to_fp16(quantize_block(x + b * kQBlock, blocks[b].qs, &sum));
  }
}

// q8_K of 256 floats (quantize_row_q8_K_ref): the first value of largest magnitude maps to
// -127, codes round half to even (GGML's nearest_int; _mm256_cvtps_epi32 in the default
// rounding mode), d = 1 / iscale as a float. Returns d.
inline float quantize_block_k(const float* x, int8_t* qs, int16_t* bsums) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 amax = _mm256_setzero_ps();
  for (int i = 0; i < kQK; i += 8) amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + i)));
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  const float am = _mm_cvtss_f32(m);
  if (am == 0.0f) {
    std::memset(qs, 0, kQK);
    std::memset(bsums, 0, 16 * sizeof(int16_t));
    return 0.0f;
  }
  int j = 0;
  while (j + 1 < kQK && std::fabs(x[j]) != am) ++j;  // bounded: a NaN am matches nothing
  const float iscale = -127.0f / x[j];
  const __m256 is = _mm256_set1_ps(iscale);
  const __m256i max127 = _mm256_set1_epi32(127);
  for (int g = 0; g < 8; ++g) {
    __m256i q[4];
    for (int i = 0; i < 4; ++i)
      q[i] = _mm256_min_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 32 * g + 8 * i), is)), max127);
    // Sums of each 16: lanes 0 and 4 of h hold halves of the first, 1 and 5 of the second.
    __m256i h = _mm256_hadd_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
    h = _mm256_hadd_epi32(h, h);
    const __m128i s = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
    bsums[2 * g] = int16_t(_mm_cvtsi128_si32(s));
    bsums[2 * g + 1] = int16_t(_mm_extract_epi32(s, 1));
    const __m256i p8 = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(qs + 32 * g),
                        _mm256_permutevar8x32_epi32(p8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
  }
  return 1.0f / iscale;
}

void prepare_acts(int64_t n_tokens, int64_t n, QuantizedActs& acts, bool k) {
  const int64_t be = k ? kQK : kQBlock;
  assert(n % be == 0);
  const int64_t nb = n / be, total = n_tokens * nb;
  // qs, d, then sum + s (q8_0) or bsums (q8_K)
  const size_t bytes = size_t(total) * (be + 4 + (k ? 32 : 8)) + 64;
  if (acts.storage.size() < bytes) acts.storage.resize(bytes);
  uint8_t* base = acts.storage.data();
  base += (32 - reinterpret_cast<uintptr_t>(base) % 32) % 32;  // 32-byte aligned qs
  acts.k = k;
  acts.n_blocks = nb;
  acts.qs = reinterpret_cast<int8_t*>(base);
  acts.d = reinterpret_cast<float*>(base + total * be);
  acts.sum = k ? nullptr : reinterpret_cast<int32_t*>(acts.d + total);
  acts.s = k ? nullptr : reinterpret_cast<float*>(acts.sum + total);
  acts.bsums = k ? reinterpret_cast<int16_t*>(acts.d + total) : nullptr;
}

void quantize_acts(const float* x, int64_t t0, int64_t t1, QuantizedActs& acts) {
  const int64_t nb = acts.n_blocks;
  if (acts.k) {
    for (int64_t i = t0 * nb; i < t1 * nb; ++i) acts.d[i] = quantize_block_k(x + i * kQK, acts.qs + i * kQK, acts.bsums + i * 16);
    return;
  }
  for (int64_t i = t0 * nb; i < t1 * nb; ++i) {
    int sum;
    const float d = quantize_block(x + i * kQBlock, acts.qs + i * kQBlock, &sum);
    // Round the scale through fp16 so results match the q8_0 reference format exactly;
    // q8_1's s = fp16(sum * d) takes the unrounded d, as GGML.
    acts.d[i] = fp16_to_f32(f32_to_fp16(d));
    acts.sum[i] = sum;
    acts.s[i] = fp16_to_f32(f32_to_fp16(float(sum) * d));
  }
}

// Dequantisation helpers. GGML's reference rounds d * q and then adds the minimum: keep the
// product from being fused into an FMA (GCC contracts intrinsics' mul + add).
inline __m256 opaque(__m256 v) {
  __asm__("" : "+x"(v));
  return v;
}

// Elements 8i..8i+7 of 32 unsigned byte codes, as floats (minus offset).
inline __m256 codes8(__m256i q, int i, int offset) {
  const __m128i half = i < 2 ? _mm256_castsi256_si128(q) : _mm256_extracti128_si256(q, 1);
  const __m128i part = (i & 1) ? _mm_srli_si128(half, 8) : half;
  return _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_cvtepu8_epi32(part), _mm256_set1_epi32(offset)));
}

// 32 nibble pairs' codes (low nibbles first) with a 5th bit from qh (nullptr: none).
inline __m256i codes32(const uint8_t* qs, const uint8_t* qh) {
  const __m256i both = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(qs)));
  __m256i q = _mm256_and_si256(_mm256_srlv_epi64(both, _mm256_setr_epi64x(0, 0, 4, 4)), _mm256_set1_epi8(15));
  if (qh) {
    uint32_t h;
    std::memcpy(&h, qh, 4);
    // Byte i takes byte i/8 of h, then its bit i%8 becomes 16.
    const __m256i spread = _mm256_shuffle_epi8(_mm256_set1_epi32(int(h)),
                                               _mm256_setr_epi64x(0, 0x0101010101010101, 0x0202020202020202, 0x0303030303030303));
    const __m256i bit = _mm256_set1_epi64x(int64_t(0x8040201008040201));
    const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
    q = _mm256_or_si256(q, _mm256_and_si256(set, _mm256_set1_epi8(16)));
  }
  return q;
}

template <class Block, bool kMin, int kOffset, bool kHigh>
void dequant_32(const void* src, float* dst, int64_t n) {
  const auto* blocks = static_cast<const Block*>(src);
  for (int64_t b = 0; b < n / kQBlock; ++b, dst += kQBlock) {
    const Block& blk = blocks[b];
    const uint8_t* qh = nullptr;
    if constexpr (kHigh) qh = blk.qh;
    const __m256i q = codes32(blk.qs, qh);
    const __m256 d = _mm256_set1_ps(fp16_to_f32(blk.d));
    for (int i = 0; i < 4; ++i) {
      __m256 v = _mm256_mul_ps(codes8(q, i, kOffset), d);
      if constexpr (kMin) v = _mm256_add_ps(opaque(v), _mm256_set1_ps(fp16_to_f32(blk.m)));
      _mm256_storeu_ps(dst + 8 * i, v);
    }
  }
}

// q4_K: (d sc_j) q - (dmin m_j) per 32 values; q6_K: (d sc_j) (q - 32) per 16.
template <DType T>
void dequant_k(const void* src, float* dst, int64_t n) {
  const auto* blocks = static_cast<const typename KQuant<T>::Block*>(src);
  for (int64_t b = 0; b < n / kQK; ++b) {
    KBlock k;
    KQuant<T>::decode(blocks[b], k);
    alignas(16) int8_t sc[16];
    alignas(32) int16_t mn[16];
    _mm_store_si128(reinterpret_cast<__m128i*>(sc), k.sc);
    _mm256_store_si256(reinterpret_cast<__m256i*>(mn), k.mn);
    for (int g = 0; g < 8; ++g)
      for (int i = 0; i < 4; ++i) {
        const int j = 2 * g + i / 2;  // the 16-value sub-block
        float* out = dst + b * kQK + 32 * g + 8 * i;
        if constexpr (T == DType::Q6_K) {
          _mm256_storeu_ps(out, _mm256_mul_ps(_mm256_set1_ps(k.d * float(sc[j])), codes8(k.q[g], i, 32)));
        } else {
          const __m256 v = opaque(_mm256_mul_ps(_mm256_set1_ps(k.d * float(sc[j])), codes8(k.q[g], i, 0)));
          _mm256_storeu_ps(out, _mm256_sub_ps(v, _mm256_set1_ps(k.dmin * float(mn[j]))));
        }
      }
  }
}

}  // namespace detail

void quantize_row(DType t, const float* src, void* dst, int64_t n) {
  if (t == DType::Q8_0) {
    detail::quantize_row_q8_0(src, dst, n);
  } else {
    ref::quantize_row(t, src, dst, n);  // weight formats are converted offline: no fast path needed
  }
}

void dequantize_row(DType t, const void* src, float* dst, int64_t n) {
  assert(n % block_elems(t) == 0);
  int64_t i = 0;
  switch (t) {
    case DType::F32:
      std::memcpy(dst, src, size_t(n) * 4);
      return;
    case DType::F16: {
      const auto* h = static_cast<const uint16_t*>(src);
      for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, simd::load_f16(h + i));
      for (; i < n; ++i) dst[i] = fp16_to_f32(h[i]);
      return;
    }
    case DType::BF16: {
      const auto* h = static_cast<const uint16_t*>(src);
      for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, simd::load_bf16(h + i));
      for (; i < n; ++i) dst[i] = bf16_to_f32(h[i]);
      return;
    }
    case DType::Q8_0: {
      const auto* blocks = static_cast<const BlockQ8_0*>(src);
      for (int64_t b = 0; b < n / kQBlock; ++b) {
        const __m256 d = _mm256_set1_ps(fp16_to_f32(blocks[b].d));
        for (int j = 0; j < kQBlock; j += 8) {
          const __m128i q = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(blocks[b].qs + j));
          _mm256_storeu_ps(dst + b * kQBlock + j, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q))));
        }
      }
      return;
    }
    case DType::Q4_0: {
      const auto* blocks = static_cast<const BlockQ4_0*>(src);
      for (int64_t b = 0; b < n / kQBlock; ++b) {
        const __m256 d = _mm256_set1_ps(fp16_to_f32(blocks[b].d));
        const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blocks[b].qs));
        const __m128i lo = _mm_sub_epi8(_mm_and_si128(bytes, _mm_set1_epi8(15)), _mm_set1_epi8(8));
        const __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(bytes, 4), _mm_set1_epi8(15)), _mm_set1_epi8(8));
        float* out = dst + b * kQBlock;
        _mm256_storeu_ps(out, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo))));
        _mm256_storeu_ps(out + 8, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8)))));
        _mm256_storeu_ps(out + 16, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi))));
        _mm256_storeu_ps(out + 24, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8)))));
      }
      return;
    }
    case DType::Q4_1: detail::dequant_32<BlockQ4_1, true, 0, false>(src, dst, n); return;
    case DType::Q5_0: detail::dequant_32<BlockQ5_0, false, 16, true>(src, dst, n); return;
    case DType::Q5_1: detail::dequant_32<BlockQ5_1, true, 0, true>(src, dst, n); return;
    case DType::Q4_K: detail::dequant_k<DType::Q4_K>(src, dst, n); return;
    case DType::Q5_K: detail::dequant_k<DType::Q5_K>(src, dst, n); return;
    case DType::Q6_K: detail::dequant_k<DType::Q6_K>(src, dst, n); return;
    case DType::I32:
      assert(!"dequantize_row: I32 is not a float type");
      return;
    default:
      ref::dequantize_row(t, src, dst, n);  // the other quantised types: the scalar reference
      return;
  }
}

}  // namespace mf::ops
