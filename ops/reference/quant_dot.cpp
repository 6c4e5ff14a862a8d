// Scalar activation quantisers (q8_1, q8_K) and vec-dots of the quantised weight types,
// re-derived from GGML's reference C: integer codes times integer activations summed
// exactly per block (per super-block for the k-quants, with per-16/32 integer scales),
// then scaled in float. Built with -ffp-contract=off.
#include "ops/reference/quant_dot.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstring>

#include "core/half.h"
#include "ops/ops.h"

namespace mf::ref::detail {

namespace {

// GGML's nearest_int: round half to even (|v| < 2^22).
int nearest_int(float v) {
  const float t = v + 12582912.0f;
  int32_t i;
  std::memcpy(&i, &t, 4);
  return (i & 0x007fffff) - 0x00400000;
}

uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// One 32-block as integer codes (value = d * code + m): q4_0/q5_0 signed, q4_1/q5_1 unsigned.
struct Codes32 {
  int code[32];
  float d = 0, m = 0;
};

Codes32 codes32(DType t, const uint8_t* blk) {
  Codes32 c;
  const uint8_t* qs = nullptr;
  uint32_t qh = 0;
  int offset = 0;
  switch (t) {
    case DType::Q4_0: { auto& b = *reinterpret_cast<const BlockQ4_0*>(blk); c.d = fp16_to_f32(b.d); qs = b.qs; offset = 8; break; }
    case DType::Q4_1: { auto& b = *reinterpret_cast<const BlockQ4_1*>(blk); c.d = fp16_to_f32(b.d); c.m = fp16_to_f32(b.m); qs = b.qs; break; }
    case DType::Q5_0: { auto& b = *reinterpret_cast<const BlockQ5_0*>(blk); c.d = fp16_to_f32(b.d); qs = b.qs; qh = load_u32(b.qh); offset = 16; break; }
    case DType::Q5_1: { auto& b = *reinterpret_cast<const BlockQ5_1*>(blk); c.d = fp16_to_f32(b.d); c.m = fp16_to_f32(b.m); qs = b.qs; qh = load_u32(b.qh); break; }
    default: assert(!"codes32: not a 4/5-bit 32-block type");
  }
  for (int e = 0; e < 32; ++e) {
    const int lo = e < 16 ? (qs[e] & 0xF) : (qs[e - 16] >> 4);
    c.code[e] = (lo | int((qh >> e) & 1) << 4) - offset;
  }
  return c;
}

// One k-quant super-block as integers: value = d * sc[e/16] * code[e] - dmin * mn[e/16].
struct CodesK {
  int code[256];
  int sc[16], mn[16];
  float d = 0, dmin = 0;
};

void scale_min_k4(int j, const uint8_t* q, int* sc, int* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

CodesK codes_k(DType t, const uint8_t* blk) {
  CodesK c{};
  switch (t) {
    case DType::Q2_K: {
      auto& b = *reinterpret_cast<const BlockQ2_K*>(blk);
      c.d = fp16_to_f32(b.d), c.dmin = fp16_to_f32(b.dmin);
      for (int e = 0; e < 256; ++e) c.code[e] = (b.qs[32 * (e / 128) + e % 32] >> (2 * (e % 128 / 32))) & 3;
      for (int j = 0; j < 16; ++j) c.sc[j] = b.scales[j] & 0xF, c.mn[j] = b.scales[j] >> 4;
      break;
    }
    case DType::Q3_K: {
      auto& b = *reinterpret_cast<const BlockQ3_K*>(blk);
      c.d = fp16_to_f32(b.d);
      for (int e = 0; e < 256; ++e) {
        const int n = e / 128, s = e % 128 / 32, l = e % 32;
        const int hbit = (b.hmask[l] >> (4 * n + s)) & 1;
        c.code[e] = ((b.qs[32 * n + l] >> (2 * s)) & 3) - (hbit ? 0 : 4);
      }
      for (int j = 0; j < 16; ++j) {
        const int lo = j < 8 ? (b.scales[j] & 0xF) : (b.scales[j - 8] >> 4);
        const int hi = (b.scales[8 + j % 4] >> (2 * (j / 4))) & 3;
        c.sc[j] = (lo | hi << 4) - 32;
      }
      break;
    }
    case DType::Q4_K:
    case DType::Q5_K: {
      const bool five = t == DType::Q5_K;
      const auto& b4 = *reinterpret_cast<const BlockQ4_K*>(blk);
      const auto& b5 = *reinterpret_cast<const BlockQ5_K*>(blk);
      const uint8_t* scales = five ? b5.scales : b4.scales;
      const uint8_t* qs = five ? b5.qs : b4.qs;
      c.d = fp16_to_f32(five ? b5.d : b4.d), c.dmin = fp16_to_f32(five ? b5.dmin : b4.dmin);
      for (int e = 0; e < 256; ++e) {
        const int j = e / 64, l = e % 64;
        const uint8_t byte = qs[32 * j + l % 32];
        c.code[e] = l < 32 ? (byte & 0xF) : (byte >> 4);
        if (five) c.code[e] += ((b5.qh[l % 32] >> (2 * j + l / 32)) & 1) << 4;
      }
      for (int j = 0; j < 8; ++j) {
        int sc, m;
        scale_min_k4(j, scales, &sc, &m);
        c.sc[2 * j] = c.sc[2 * j + 1] = sc;
        c.mn[2 * j] = c.mn[2 * j + 1] = m;
      }
      break;
    }
    case DType::Q6_K: {
      auto& b = *reinterpret_cast<const BlockQ6_K*>(blk);
      c.d = fp16_to_f32(b.d);
      for (int e = 0; e < 256; ++e) {
        const int n = e / 128, k = e % 128 / 32, l = e % 32;
        const uint8_t byte = b.ql[64 * n + l + 32 * (k & 1)];
        const int lo = k < 2 ? (byte & 0xF) : (byte >> 4);
        c.code[e] = (lo | ((b.qh[32 * n + l] >> (2 * k)) & 3) << 4) - 32;
      }
      for (int j = 0; j < 16; ++j) c.sc[j] = b.scales[j];
      break;
    }
    default: assert(!"codes_k: not a k-quant");
  }
  return c;
}

}  // namespace

ActFormat act_format(DType w) {
  if (is_kquant(w)) return ActFormat::Q8_K;
  if (w == DType::Q4_1 || w == DType::Q5_1) return ActFormat::Q8_1;
  return ActFormat::Q8_0;
}

void quantize_row_q8_1(const float* x, BlockQ8_1* y, int64_t n) {
  for (int64_t b = 0; b < n / 32; ++b, x += 32) {
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    int sum = 0;
    for (int j = 0; j < 32; ++j) {
      y[b].qs[j] = int8_t(std::roundf(x[j] * id));
      sum += y[b].qs[j];
    }
    y[b].d = f32_to_fp16(d);
    y[b].s = f32_to_fp16(float(sum) * d);  // the unrounded d, as GGML
  }
}

void quantize_row_q8_K(const float* x, BlockQ8_K* y, int64_t n) {
  for (int64_t b = 0; b < n / 256; ++b, x += 256) {
    float amax = 0.0f, max = 0.0f;  // max: the first value of largest magnitude, with its sign
    for (int j = 0; j < 256; ++j)
      if (std::fabs(x[j]) > amax) amax = std::fabs(x[j]), max = x[j];
    if (amax == 0.0f) {
      std::memset(&y[b], 0, sizeof(BlockQ8_K));
      continue;
    }
    const float iscale = -127.0f / max;
    for (int j = 0; j < 256; ++j) y[b].qs[j] = int8_t(std::min(127, nearest_int(iscale * x[j])));
    for (int j = 0; j < 16; ++j) {
      int sum = 0;
      for (int i = 0; i < 16; ++i) sum += y[b].qs[16 * j + i];
      y[b].bsums[j] = int16_t(sum);
    }
    y[b].d = 1.0f / iscale;
  }
}

size_t acts_row_bytes(DType w, int64_t n) {
  switch (act_format(w)) {
    case ActFormat::Q8_0: return size_t(n / 32) * sizeof(BlockQ8_0);
    case ActFormat::Q8_1: return size_t(n / 32) * sizeof(BlockQ8_1);
    case ActFormat::Q8_K: return size_t(n / 256) * sizeof(BlockQ8_K);
  }
  return 0;
}

void quantize_acts(DType w, const float* x, void* xq, int64_t n) {
  switch (act_format(w)) {
    case ActFormat::Q8_0: quantize_row(DType::Q8_0, x, xq, n); break;
    case ActFormat::Q8_1: quantize_row_q8_1(x, static_cast<BlockQ8_1*>(xq), n); break;
    case ActFormat::Q8_K: quantize_row_q8_K(x, static_cast<BlockQ8_K*>(xq), n); break;
  }
}

void dequantize_acts(DType w, const void* xq, float* x, int64_t n) {
  switch (act_format(w)) {
    case ActFormat::Q8_0: dequantize_row(DType::Q8_0, xq, x, n); break;
    case ActFormat::Q8_1:
      for (int64_t b = 0; b < n / 32; ++b) {
        const auto& blk = static_cast<const BlockQ8_1*>(xq)[b];
        for (int j = 0; j < 32; ++j) x[32 * b + j] = fp16_to_f32(blk.d) * float(blk.qs[j]);
      }
      break;
    case ActFormat::Q8_K:
      for (int64_t b = 0; b < n / 256; ++b) {
        const auto& blk = static_cast<const BlockQ8_K*>(xq)[b];
        for (int j = 0; j < 256; ++j) x[256 * b + j] = blk.d * float(blk.qs[j]);
      }
      break;
  }
}

float vec_dot(DType t, const void* w, const void* xq, int64_t n) {
  const auto* wb = static_cast<const uint8_t*>(w);
  float sumf = 0.0f;
  if (is_kquant(t)) {
    for (int64_t b = 0; b < n / 256; ++b) {
      const CodesK c = codes_k(t, wb + b * block_bytes(t));
      const BlockQ8_K& x = static_cast<const BlockQ8_K*>(xq)[b];
      int isum = 0, imin = 0;  // exact: |isum| < 256 * 128 * 32 * 127
      for (int j = 0; j < 16; ++j) {
        int dot = 0;
        for (int i = 16 * j; i < 16 * j + 16; ++i) dot += c.code[i] * x.qs[i];
        isum += c.sc[j] * dot;
        imin += c.mn[j] * x.bsums[j];
      }
      sumf += (c.d * x.d) * float(isum) - (c.dmin * x.d) * float(imin);
    }
    return sumf;
  }
  if (t == DType::Q8_0) {
    for (int64_t b = 0; b < n / 32; ++b) {
      const auto& wq = static_cast<const BlockQ8_0*>(w)[b];
      const auto& x = static_cast<const BlockQ8_0*>(xq)[b];
      int sumi = 0;
      for (int j = 0; j < 32; ++j) sumi += wq.qs[j] * x.qs[j];
      sumf += float(sumi) * (fp16_to_f32(wq.d) * fp16_to_f32(x.d));
    }
    return sumf;
  }
  const bool q8_1 = act_format(t) == ActFormat::Q8_1;
  for (int64_t b = 0; b < n / 32; ++b) {
    const Codes32 c = codes32(t, wb + b * block_bytes(t));
    const int8_t* qs = q8_1 ? static_cast<const BlockQ8_1*>(xq)[b].qs : static_cast<const BlockQ8_0*>(xq)[b].qs;
    const float dx = fp16_to_f32(q8_1 ? static_cast<const BlockQ8_1*>(xq)[b].d : static_cast<const BlockQ8_0*>(xq)[b].d);
    int sumi = 0;
    for (int j = 0; j < 32; ++j) sumi += c.code[j] * qs[j];
    sumf += (c.d * dx) * float(sumi);
    if (q8_1) sumf += c.m * fp16_to_f32(static_cast<const BlockQ8_1*>(xq)[b].s);
  }
  return sumf;
}

}  // namespace mf::ref::detail
