// fp16 and bf16 <-> f32 conversion, scalar (exact, round-to-nearest-even).
#pragma once
#include <cstdint>
#include <cstring>

namespace mf {

inline float bf16_to_f32(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffff) > 0x7f800000) return uint16_t((u >> 16) | 64);  // keep NaN quiet
  u += 0x7fff + ((u >> 16) & 1);
  return uint16_t(u >> 16);
}

inline float fp16_to_f32(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t man = h & 0x3ff;
  uint32_t u;
  if (exp == 0) {
    if (man == 0) {
      u = sign;
    } else {  // subnormal: normalise
      int e = -1;
      do { man <<= 1; ++e; } while (!(man & 0x400));
      u = sign | uint32_t(127 - 15 - e) << 23 | (man & 0x3ff) << 13;
    }
  } else if (exp == 31) {
    u = sign | 0x7f800000 | man << 13;
  } else {
    u = sign | (exp + 127 - 15) << 23 | man << 13;
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline uint16_t f32_to_fp16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  uint32_t sign = (u >> 16) & 0x8000;
  uint32_t a = u & 0x7fffffff;
  if (a > 0x7f800000) return uint16_t(sign | 0x7e00);               // NaN
  if (a >= 0x477ff000) return uint16_t(sign | 0x7c00);              // overflow -> inf
  if (a < 0x38800000) {                                             // subnormal or zero
    if (a < 0x33000000) return uint16_t(sign);
    uint32_t man = (a & 0x7fffff) | 0x800000;
    int shift = 126 - int(a >> 23);  // 14..24
    uint32_t half = man >> shift;
    uint32_t rem = man & ((1u << shift) - 1), mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1))) ++half;
    return uint16_t(sign | half);
  }
  uint32_t r = a + 0xfff + ((a >> 13) & 1);  // round to nearest even
  return uint16_t(sign | ((r - 0x38000000) >> 13));
}

}  // namespace mf
