// Reference quantisers of the k-quants q4_K, q5_K and q6_K, following llama.cpp's
// quantize_row_q{4,5,6}_K_ref (what llama-quantize runs without an importance matrix) step for
// step, so that the same floats give the same bytes. Compiled with -ffp-contract=off, as
// llama.cpp's C is (ISO C mode). q2_K and q3_K are read but not written.
#include <cmath>
#include <cstring>

#include "core/half.h"
#include "ops/reference/quant_more.h"

namespace mf::ref::detail {

namespace {

// Round half to even, as llama.cpp's nearest_int (a float-add trick) for |x| < 2^22.
int nearest_int(float x) { return int(std::lrintf(x)); }

// Scale and min of a sub-block by weighted least squares over 20 (or nstep) trial grids:
// llama.cpp's make_qkx2_quants with use_mad = false. Returns the scale, sets *the_min = -min.
float make_qkx2_quants(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* the_min,
                       uint8_t* Laux, float rmin, float rdelta, int nstep) {
  float min = x[0], max = x[0];
  float sum_w = weights[0], sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    const float w = weights[i];
    sum_w += w;
    sum_x += w * x[i];
  }
  if (min > 0) min = 0;
  if (max == min) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    *the_min = -min;
    return 0.0f;
  }
  float iscale = float(nmax) / (max - min);
  float scale = 1.0f / iscale;
  float best_error = 0;
  for (int i = 0; i < n; ++i) {
    int l = nearest_int(iscale * (x[i] - min));
    L[i] = uint8_t(l < 0 ? 0 : l > nmax ? nmax : l);
    float diff = scale * float(L[i]) + min - x[i];
    diff = diff * diff;
    best_error += weights[i] * diff;
  }
  if (nstep < 1) {
    *the_min = -min;
    return scale;
  }
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * float(is) + float(nmax)) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      int l = nearest_int(iscale * (x[i] - min));
      l = l < 0 ? 0 : l > nmax ? nmax : l;
      Laux[i] = uint8_t(l);
      const float w = weights[i];
      sum_l += w * float(l);
      sum_l2 += w * float(l) * float(l);
      sum_xl += w * float(l) * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D > 0) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
      if (this_min > 0) {
        this_min = 0;
        this_scale = sum_xl / sum_l2;
      }
      float cur_error = 0;
      for (int i = 0; i < n; ++i) {
        float diff = this_scale * float(Laux[i]) + this_min - x[i];
        diff = diff * diff;
        cur_error += weights[i] * diff;
      }
      if (cur_error < best_error) {
        for (int i = 0; i < n; ++i) L[i] = Laux[i];
        best_error = cur_error;
        scale = this_scale;
        min = this_min;
      }
    }
  }
  *the_min = -min;
  return scale;
}

// Symmetric scale with a search over 18 nearby grids: llama.cpp's make_qx_quants with
// rmse_type 1 (weights x^2) and no importance matrix. L holds codes offset by nmax.
float make_qx_quants(int n, int nmax, const float* x, int8_t* L) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  if (amax < 1e-15f) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.0f;
  }
  auto clamp = [&](int l) { return l < -nmax ? -nmax : l > nmax - 1 ? nmax - 1 : l; };
  float iscale = -float(nmax) / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = clamp(nearest_int(iscale * x[i]));
    L[i] = int8_t(l + nmax);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * float(l);
    suml2 += w * float(l) * float(l);
  }
  float scale = suml2 != 0 ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = -(float(nmax) + 0.1f * float(is)) / max;
    sumlx = suml2 = 0;
    for (int i = 0; i < n; ++i) {
      const int l = clamp(nearest_int(iscale * x[i]));
      const float w = x[i] * x[i];
      sumlx += w * x[i] * float(l);
      suml2 += w * float(l) * float(l);
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; ++i) L[i] = int8_t(nmax + clamp(nearest_int(iscale * x[i])));
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

void scale_min_k4(int j, const uint8_t* q, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = uint8_t((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *m = uint8_t((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

// q4_K and q5_K share their scale search and packing; they differ in nmax (15 / 31), the
// search range and how the codes are stored.
template <int kMax>
void quantize_scales_k(const float* x, uint8_t* packed, uint16_t* d_out, uint16_t* dmin_out, uint8_t* L) {
  float mins[8], scales[8], weights[32];
  uint8_t Laux[32];
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < 8; ++j) {
    float sum_x2 = 0;
    for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
    const float av_x = std::sqrt(sum_x2 / 32);
    for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(x[32 * j + l]);
    scales[j] = kMax == 15 ? make_qkx2_quants(32, 15, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, -1.0f, 0.1f, 20)
                           : make_qkx2_quants(32, 31, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, -0.5f, 0.1f, 15);
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  const float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f;
  const float inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
  std::memset(packed, 0, 12);
  for (int j = 0; j < 8; ++j) {
    int ls = nearest_int(inv_scale * scales[j]), lm = nearest_int(inv_min * mins[j]);
    ls = ls > 63 ? 63 : ls;
    lm = lm > 63 ? 63 : lm;
    if (j < 4) {
      packed[j] = uint8_t(ls);
      packed[j + 4] = uint8_t(lm);
    } else {
      packed[j + 4] = uint8_t((ls & 0xF) | ((lm & 0xF) << 4));
      packed[j - 4] |= uint8_t((ls >> 4) << 6);
      packed[j] |= uint8_t((lm >> 4) << 6);
    }
  }
  *d_out = f32_to_fp16(max_scale / 63.0f);
  *dmin_out = f32_to_fp16(max_min / 63.0f);
  // Codes again against the rounded scales, as they will be decoded.
  for (int j = 0; j < 8; ++j) {
    uint8_t sc, m;
    scale_min_k4(j, packed, &sc, &m);
    const float d = fp16_to_f32(*d_out) * float(sc);
    if (d == 0.0f) continue;
    const float dm = fp16_to_f32(*dmin_out) * float(m);
    for (int ii = 0; ii < 32; ++ii) {
      const int l = nearest_int((x[32 * j + ii] + dm) / d);
      L[32 * j + ii] = uint8_t(l < 0 ? 0 : l > kMax ? kMax : l);
    }
  }
}

void quantize_q4_K(const float* x, BlockQ4_K& y) {
  uint8_t L[kQK];
  quantize_scales_k<15>(x, y.scales, &y.d, &y.dmin, L);
  uint8_t* q = y.qs;
  for (int j = 0; j < kQK; j += 64, q += 32)
    for (int l = 0; l < 32; ++l) q[l] = uint8_t(L[j + l] | (L[j + l + 32] << 4));
}

void quantize_q5_K(const float* x, BlockQ5_K& y) {
  uint8_t L[kQK];
  quantize_scales_k<31>(x, y.scales, &y.d, &y.dmin, L);
  std::memset(y.qh, 0, sizeof y.qh);
  uint8_t* ql = y.qs;
  uint8_t m1 = 1, m2 = 2;
  for (int n = 0; n < kQK; n += 64, ql += 32, m1 = uint8_t(m1 << 2), m2 = uint8_t(m2 << 2)) {
    for (int j = 0; j < 32; ++j) {
      int l1 = L[n + j], l2 = L[n + j + 32];
      if (l1 > 15) l1 -= 16, y.qh[j] |= m1;
      if (l2 > 15) l2 -= 16, y.qh[j] |= m2;
      ql[j] = uint8_t(l1 | (l2 << 4));
    }
  }
}

void quantize_q6_K(const float* x, BlockQ6_K& y) {
  int8_t L[kQK];
  float scales[16];
  float max_scale = 0, max_abs_scale = 0;
  for (int ib = 0; ib < 16; ++ib) {
    const float scale = make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib);
    scales[ib] = scale;
    if (std::fabs(scale) > max_abs_scale) {
      max_abs_scale = std::fabs(scale);
      max_scale = scale;
    }
  }
  if (max_abs_scale < 1e-15f) {
    std::memset(&y, 0, sizeof y);
    return;
  }
  const float iscale = -128.0f / max_scale;
  y.d = f32_to_fp16(1.0f / iscale);
  for (int ib = 0; ib < 16; ++ib) {
    const int s = nearest_int(iscale * scales[ib]);
    y.scales[ib] = int8_t(s > 127 ? 127 : s);
  }
  for (int j = 0; j < 16; ++j) {
    const float d = fp16_to_f32(y.d) * float(y.scales[j]);
    if (d == 0.0f) continue;
    for (int ii = 0; ii < 16; ++ii) {
      int l = nearest_int(x[16 * j + ii] / d);
      l = l < -32 ? -32 : l > 31 ? 31 : l;
      L[16 * j + ii] = int8_t(l + 32);
    }
  }
  uint8_t* ql = y.ql;
  uint8_t* qh = y.qh;
  for (int j = 0; j < kQK; j += 128, ql += 64, qh += 32) {
    for (int l = 0; l < 32; ++l) {
      const uint8_t q1 = L[j + l] & 0xF, q2 = L[j + l + 32] & 0xF, q3 = L[j + l + 64] & 0xF, q4 = L[j + l + 96] & 0xF;
      ql[l] = uint8_t(q1 | (q3 << 4));
      ql[l + 32] = uint8_t(q2 | (q4 << 4));
      qh[l] = uint8_t((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) |
                      ((L[j + l + 96] >> 4) << 6));
    }
  }
}

}  // namespace

bool quantize_row_kquant(DType t, const float* src, void* dst, int64_t n) {
  const int64_t nb = n / kQK;
  switch (t) {
    case DType::Q4_K: for (int64_t b = 0; b < nb; ++b) quantize_q4_K(src + b * kQK, static_cast<BlockQ4_K*>(dst)[b]); return true;
    case DType::Q5_K: for (int64_t b = 0; b < nb; ++b) quantize_q5_K(src + b * kQK, static_cast<BlockQ5_K*>(dst)[b]); return true;
    case DType::Q6_K: for (int64_t b = 0; b < nb; ++b) quantize_q6_K(src + b * kQK, static_cast<BlockQ6_K*>(dst)[b]); return true;
    default: return false;
  }
}

}  // namespace mf::ref::detail
