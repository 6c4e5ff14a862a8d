// Scalar (de)quantisation of q4_1, q5_0, q5_1 and the k-quants q2_K..q6_K, following GGML's
// reference C (ggml-quants.c) operation for operation, so that dequantised values equal
// gguf-py's `gguf.quants.dequantize` bit for bit. Built with -ffp-contract=off (CMakeLists):
// a fused d*q - m would round once instead of twice and part from GGML's values.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/half.h"
#include "ops/reference/quant_more.h"

namespace mf::ref::detail {

namespace {

// Scale and min of sub-block j (0..7) from q4_K/q5_K's 12 packed bytes: 6 bits each.
void scale_min_k4(int j, const uint8_t* q, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = uint8_t((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *m = uint8_t((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

void dequant_q4_1(const BlockQ4_1& b, float* y) {
  const float d = fp16_to_f32(b.d), m = fp16_to_f32(b.m);
  for (int j = 0; j < 16; ++j) {
    y[j] = float(b.qs[j] & 0xF) * d + m;
    y[j + 16] = float(b.qs[j] >> 4) * d + m;
  }
}

void dequant_q5_0(const BlockQ5_0& b, float* y) {
  const float d = fp16_to_f32(b.d);
  const uint32_t qh = load_u32(b.qh);
  for (int j = 0; j < 16; ++j) {
    const int x0 = int((b.qs[j] & 0xF) | (((qh >> j) & 1) << 4)) - 16;
    const int x1 = int((b.qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4)) - 16;
    y[j] = float(x0) * d;
    y[j + 16] = float(x1) * d;
  }
}

void dequant_q5_1(const BlockQ5_1& b, float* y) {
  const float d = fp16_to_f32(b.d), m = fp16_to_f32(b.m);
  const uint32_t qh = load_u32(b.qh);
  for (int j = 0; j < 16; ++j) {
    const int x0 = int((b.qs[j] & 0xF) | (((qh >> j) & 1) << 4));
    const int x1 = int((b.qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4));
    y[j] = float(x0) * d + m;
    y[j + 16] = float(x1) * d + m;
  }
}

void dequant_q2_K(const BlockQ2_K& b, float* y) {
  const float d = fp16_to_f32(b.d), dmin = fp16_to_f32(b.dmin);
  const uint8_t* q = b.qs;
  int is = 0;
  for (int n = 0; n < kQK; n += 128) {
    for (int shift = 0; shift < 8; shift += 2) {
      for (int half = 0; half < 2; ++half) {  // two 16-value sub-blocks per 32 code bytes
        const uint8_t sc = b.scales[is++];
        const float dl = d * float(sc & 0xF), ml = dmin * float(sc >> 4);
        for (int l = 0; l < 16; ++l) *y++ = dl * float((q[l + 16 * half] >> shift) & 3) - ml;
      }
    }
    q += 32;
  }
}

// q3_K's 16 signed 6-bit scales (low 4 bits in bytes 0..7, high 2 bits in bytes 8..11).
void scales_q3_K(const uint8_t* packed, int8_t* out) {
  for (int j = 0; j < 16; ++j) {
    const int lo = j < 8 ? (packed[j] & 0xF) : (packed[j - 8] >> 4);
    const int hi = (packed[8 + j % 4] >> (2 * (j / 4))) & 3;
    out[j] = int8_t((lo | hi << 4) - 32);
  }
}

void dequant_q3_K(const BlockQ3_K& b, float* y) {
  const float d_all = fp16_to_f32(b.d);
  int8_t scales[16];
  scales_q3_K(b.scales, scales);
  const uint8_t* q = b.qs;
  uint8_t m = 1;
  int is = 0;
  for (int n = 0; n < kQK; n += 128) {
    for (int shift = 0; shift < 8; shift += 2, m = uint8_t(m << 1)) {
      for (int half = 0; half < 2; ++half) {
        const float dl = d_all * float(scales[is++]);
        for (int l = 16 * half; l < 16 * half + 16; ++l)
          *y++ = dl * float(int((q[l] >> shift) & 3) - ((b.hmask[l] & m) ? 0 : 4));
      }
    }
    q += 32;
  }
}

void dequant_q4_K(const BlockQ4_K& b, float* y) {
  const float d = fp16_to_f32(b.d), dmin = fp16_to_f32(b.dmin);
  const uint8_t* q = b.qs;
  for (int j = 0; j < 8; j += 2, q += 32) {
    uint8_t sc, m;
    scale_min_k4(j, b.scales, &sc, &m);
    const float d1 = d * float(sc), m1 = dmin * float(m);
    scale_min_k4(j + 1, b.scales, &sc, &m);
    const float d2 = d * float(sc), m2 = dmin * float(m);
    for (int l = 0; l < 32; ++l) *y++ = d1 * float(q[l] & 0xF) - m1;
    for (int l = 0; l < 32; ++l) *y++ = d2 * float(q[l] >> 4) - m2;
  }
}

void dequant_q5_K(const BlockQ5_K& b, float* y) {
  const float d = fp16_to_f32(b.d), dmin = fp16_to_f32(b.dmin);
  const uint8_t* ql = b.qs;
  uint8_t u1 = 1, u2 = 2;
  for (int j = 0; j < 8; j += 2, ql += 32, u1 = uint8_t(u1 << 2), u2 = uint8_t(u2 << 2)) {
    uint8_t sc, m;
    scale_min_k4(j, b.scales, &sc, &m);
    const float d1 = d * float(sc), m1 = dmin * float(m);
    scale_min_k4(j + 1, b.scales, &sc, &m);
    const float d2 = d * float(sc), m2 = dmin * float(m);
    for (int l = 0; l < 32; ++l) *y++ = d1 * float((ql[l] & 0xF) + ((b.qh[l] & u1) ? 16 : 0)) - m1;
    for (int l = 0; l < 32; ++l) *y++ = d2 * float((ql[l] >> 4) + ((b.qh[l] & u2) ? 16 : 0)) - m2;
  }
}

void dequant_q6_K(const BlockQ6_K& b, float* y) {
  const float d = fp16_to_f32(b.d);
  const uint8_t* ql = b.ql;
  const uint8_t* qh = b.qh;
  const int8_t* sc = b.scales;
  for (int n = 0; n < kQK; n += 128, y += 128, ql += 64, qh += 32, sc += 8) {
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      const int q1 = int((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
      const int q2 = int((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
      const int q3 = int((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      const int q4 = int((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      y[l] = d * float(sc[is]) * float(q1);
      y[l + 32] = d * float(sc[is + 2]) * float(q2);
      y[l + 64] = d * float(sc[is + 4]) * float(q3);
      y[l + 96] = d * float(sc[is + 6]) * float(q4);
    }
  }
}

// q4_1 / q5_1: minimum and step of the block's range; codes round to nearest.
template <int kLevels>
void quantize_min_max(const float* x, float* d, float* m, uint8_t* q) {
  float mn = x[0], mx = x[0];
  for (int j = 1; j < kQBlock; ++j) {
    mn = std::min(mn, x[j]);
    mx = std::max(mx, x[j]);
  }
  *d = (mx - mn) / float(kLevels - 1);
  *m = mn;
  const float id = *d != 0.0f ? 1.0f / *d : 0.0f;
  for (int j = 0; j < kQBlock; ++j) q[j] = uint8_t(std::min(kLevels - 1, int((x[j] - mn) * id + 0.5f)));
}

// Low 4 bits of the 32 codes as q4_0's nibbles; their 5th bits into qh_bytes unless it is null.
void pack_nibbles_and_high(const uint8_t* q, uint8_t* qs, uint8_t* qh_bytes) {
  uint32_t qh = 0;
  for (int j = 0; j < 16; ++j) {
    qs[j] = uint8_t((q[j] & 0xF) | (q[j + 16] & 0xF) << 4);
    qh |= uint32_t((q[j] >> 4) & 1) << j;
    qh |= uint32_t((q[j + 16] >> 4) & 1) << (j + 16);
  }
  if (qh_bytes) std::memcpy(qh_bytes, &qh, 4);
}

}  // namespace

namespace {

// Each block is copied before use: a file's blocks need not be aligned for their fp16 fields.
template <class Block, void (*kDequant)(const Block&, float*)>
void dequant_blocks(const void* src, float* dst, int64_t nb, int per_block) {
  Block blk;
  for (int64_t b = 0; b < nb; ++b) {
    std::memcpy(&blk, static_cast<const uint8_t*>(src) + b * int64_t(sizeof(Block)), sizeof blk);
    kDequant(blk, dst + b * per_block);
  }
}

}  // namespace

bool dequantize_row_more(DType t, const void* src, float* dst, int64_t n) {
  const int64_t nb = n / block_elems(t);
  switch (t) {
    case DType::Q4_1: dequant_blocks<BlockQ4_1, dequant_q4_1>(src, dst, nb, kQBlock); return true;
    case DType::Q5_0: dequant_blocks<BlockQ5_0, dequant_q5_0>(src, dst, nb, kQBlock); return true;
    case DType::Q5_1: dequant_blocks<BlockQ5_1, dequant_q5_1>(src, dst, nb, kQBlock); return true;
    case DType::Q2_K: dequant_blocks<BlockQ2_K, dequant_q2_K>(src, dst, nb, kQK); return true;
    case DType::Q3_K: dequant_blocks<BlockQ3_K, dequant_q3_K>(src, dst, nb, kQK); return true;
    case DType::Q4_K: dequant_blocks<BlockQ4_K, dequant_q4_K>(src, dst, nb, kQK); return true;
    case DType::Q5_K: dequant_blocks<BlockQ5_K, dequant_q5_K>(src, dst, nb, kQK); return true;
    case DType::Q6_K: dequant_blocks<BlockQ6_K, dequant_q6_K>(src, dst, nb, kQK); return true;
    default: return false;
  }
}

namespace {

// q4_1 (16 levels) and q5_1 (32 levels, with the 5th bits in qh): step and minimum per block.
template <class Block, int kLevels>
void quantize_rows_min_max(const float* src, void* dst, int64_t nb) {
  uint8_t q[kQBlock];
  for (int64_t b = 0; b < nb; ++b) {
    Block& blk = static_cast<Block*>(dst)[b];
    float d, m;
    quantize_min_max<kLevels>(src + b * kQBlock, &d, &m, q);
    blk.d = f32_to_fp16(d);
    blk.m = f32_to_fp16(m);
    if constexpr (kLevels == 32)
      pack_nibbles_and_high(q, blk.qs, blk.qh);
    else
      pack_nibbles_and_high(q, blk.qs, nullptr);
  }
}

}  // namespace

bool quantize_row_more(DType t, const float* src, void* dst, int64_t n) {
  const int64_t nb = n / kQBlock;
  uint8_t q[kQBlock];
  switch (t) {
    case DType::Q4_1: quantize_rows_min_max<BlockQ4_1, 16>(src, dst, nb); return true;
    case DType::Q5_1: quantize_rows_min_max<BlockQ5_1, 32>(src, dst, nb); return true;
    case DType::Q5_0:
      for (int64_t b = 0; b < nb; ++b) {
        // As q4_0: the signed value of largest magnitude maps to -16.
        const float* x = src + b * kQBlock;
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < kQBlock; ++j)
          if (std::fabs(x[j]) > amax) {
            amax = std::fabs(x[j]);
            max = x[j];
          }
        const float d = max / -16.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        for (int j = 0; j < kQBlock; ++j) q[j] = uint8_t(std::min(31, int(int8_t(x[j] * id + 16.5f))));
        BlockQ5_0& blk = static_cast<BlockQ5_0*>(dst)[b];
        blk.d = f32_to_fp16(d);
        pack_nibbles_and_high(q, blk.qs, blk.qh);
      }
      return true;
    default: return false;
  }
}

}  // namespace mf::ref::detail
