// Scalar (de)quantisation of one row, bit-compatible with GGML's q8_0 and q4_0 (the other
// quantised types: quant_more.cpp).
#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstring>

#include "core/half.h"
#include "ops/ops.h"
#include "ops/reference/quant_more.h"

namespace mf::ref {

namespace {

// Element i of a uint16 array that need not be 2-byte aligned (a file's bytes).
uint16_t load_u16(const void* p, int64_t i) {
  uint16_t v;
  std::memcpy(&v, static_cast<const uint8_t*>(p) + 2 * i, 2);
  return v;
}

void quantize_block_q8_0(const float* x, BlockQ8_0* b) {
  float amax = 0.0f;
  for (int j = 0; j < kQBlock; ++j) amax = std::fmax(amax, std::fabs(x[j]));
  const float d = amax / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  b->d = f32_to_fp16(d);
  for (int j = 0; j < kQBlock; ++j) b->qs[j] = int8_t(std::roundf(x[j] * id));
}

void quantize_block_q4_0(const float* x, BlockQ4_0* b) {
  // The signed value of largest magnitude maps to -8, so the full 4-bit range is used.
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < kQBlock; ++j) {
    if (std::fabs(x[j]) > amax) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  const float d = max / -8.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  b->d = f32_to_fp16(d);
  for (int j = 0; j < kQBlock / 2; ++j) {
    const int lo = std::min(15, int(int8_t(x[j] * id + 8.5f)));
    const int hi = std::min(15, int(int8_t(x[j + kQBlock / 2] * id + 8.5f)));
    b->qs[j] = uint8_t(lo | hi << 4);
  }
}

}  // namespace

void quantize_row(DType t, const float* src, void* dst, int64_t n) {
  assert(n % block_elems(t) == 0);
  switch (t) {
    case DType::F32:
      std::memcpy(dst, src, size_t(n) * 4);
      break;
    case DType::F16:
      for (int64_t i = 0; i < n; ++i) static_cast<uint16_t*>(dst)[i] = f32_to_fp16(src[i]);
      break;
    case DType::BF16:
      for (int64_t i = 0; i < n; ++i) static_cast<uint16_t*>(dst)[i] = f32_to_bf16(src[i]);
      break;
    case DType::Q8_0:
      for (int64_t b = 0; b < n / kQBlock; ++b) quantize_block_q8_0(src + b * kQBlock, static_cast<BlockQ8_0*>(dst) + b);
      break;
    case DType::Q4_0:
      for (int64_t b = 0; b < n / kQBlock; ++b) quantize_block_q4_0(src + b * kQBlock, static_cast<BlockQ4_0*>(dst) + b);
      break;
    case DType::I32:
      assert(!"quantize_row: I32 is not a float type");
      break;
    default: {
      [[maybe_unused]] const bool ok = detail::quantize_row_more(t, src, dst, n) || detail::quantize_row_kquant(t, src, dst, n);
      assert(ok && "quantize_row: no reference quantiser for this type");
      break;
    }
  }
}

void dequantize_row(DType t, const void* src, float* dst, int64_t n) {
  assert(n % block_elems(t) == 0);
  switch (t) {
    case DType::F32:
      std::memcpy(dst, src, size_t(n) * 4);
      break;
    case DType::F16:
      for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_f32(load_u16(src, i));
      break;
    case DType::BF16:
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(load_u16(src, i));
      break;
    case DType::Q8_0:
      for (int64_t b = 0; b < n / kQBlock; ++b) {
        BlockQ8_0 blk;  // copied: a file's blocks need not be aligned for their fp16 fields
        std::memcpy(&blk, static_cast<const BlockQ8_0*>(src) + b, sizeof blk);
        const float d = fp16_to_f32(blk.d);
        for (int j = 0; j < kQBlock; ++j) dst[b * kQBlock + j] = d * float(blk.qs[j]);
      }
      break;
    case DType::Q4_0:
      for (int64_t b = 0; b < n / kQBlock; ++b) {
        BlockQ4_0 blk;
        std::memcpy(&blk, static_cast<const BlockQ4_0*>(src) + b, sizeof blk);
        const float d = fp16_to_f32(blk.d);
        for (int j = 0; j < kQBlock / 2; ++j) {
          dst[b * kQBlock + j] = d * float((blk.qs[j] & 0xf) - 8);
          dst[b * kQBlock + j + kQBlock / 2] = d * float((blk.qs[j] >> 4) - 8);
        }
      }
      break;
    case DType::I32:
      assert(!"dequantize_row: I32 is not a float type");
      break;
    default:
      detail::dequantize_row_more(t, src, dst, n);
      break;
  }
}

}  // namespace mf::ref
