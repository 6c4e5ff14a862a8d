// Vectorised q8_0 quantisation (activations of quantised matmuls) and dequantisation of
// all weight types, plus the public ops::quantize_row / ops::dequantize_row.
#include <immintrin.h>

#include <cassert>
#include <cstring>

#include "core/half.h"
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

void prepare_acts(int64_t n_tokens, int64_t n, QuantizedActs& acts) {
  assert(n % kQBlock == 0);
  const int64_t nb = n / kQBlock, total = n_tokens * nb;
  const size_t bytes = size_t(total) * (kQBlock + 8) + 64;  // qs, d, sum
  if (acts.storage.size() < bytes) acts.storage.resize(bytes);
  uint8_t* base = acts.storage.data();
  base += (32 - reinterpret_cast<uintptr_t>(base) % 32) % 32;  // 32-byte aligned qs
  acts.n_blocks = nb;
  acts.qs = reinterpret_cast<int8_t*>(base);
  acts.d = reinterpret_cast<float*>(base + total * kQBlock);
  acts.sum = reinterpret_cast<int32_t*>(acts.d + total);
}

void quantize_acts(const float* x, int64_t t0, int64_t t1, QuantizedActs& acts) {
  const int64_t nb = acts.n_blocks;
  for (int64_t i = t0 * nb; i < t1 * nb; ++i) {
    int sum;
    // Round the scale through fp16 so results match the q8_0 reference format exactly.
    const float d = fp16_to_f32(f32_to_fp16(quantize_block(x + i * kQBlock, acts.qs + i * kQBlock, &sum)));
    acts.d[i] = d;
    acts.sum[i] = sum;
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
    case DType::I32:
      assert(!"dequantize_row: I32 is not a float type");
      return;
    default:
      ref::dequantize_row(t, src, dst, n);  // the other quantised types: the scalar reference
      return;
  }
}

}  // namespace mf::ops
