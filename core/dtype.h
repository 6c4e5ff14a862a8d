// Element types of tensors, including the block-quantised GGML formats.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace mf {

enum class DType : uint8_t { F32, F16, BF16, Q8_0, Q4_0, I32 };

// Quantised types store blocks of kQBlock elements along a row.
inline constexpr int kQBlock = 32;

struct BlockQ8_0 {
  uint16_t d;      // fp16 scale
  int8_t qs[32];   // value = d * qs[i]
};
struct BlockQ4_0 {
  uint16_t d;      // fp16 scale
  uint8_t qs[16];  // low nibbles: elements 0..15, high nibbles: 16..31; value = d * (q - 8)
};
static_assert(sizeof(BlockQ8_0) == 34 && sizeof(BlockQ4_0) == 18);

// Elements per storage block (1 for plain types).
constexpr int block_elems(DType t) { return (t == DType::Q8_0 || t == DType::Q4_0) ? kQBlock : 1; }

// Bytes per storage block.
constexpr size_t block_bytes(DType t) {
  switch (t) {
    case DType::F32: return 4;
    case DType::F16: return 2;
    case DType::BF16: return 2;
    case DType::Q8_0: return sizeof(BlockQ8_0);
    case DType::Q4_0: return sizeof(BlockQ4_0);
    case DType::I32: return 4;
  }
  return 0;
}

// Bytes for a row of n elements; n must be a multiple of block_elems(t).
constexpr size_t row_bytes(DType t, int64_t n) { return size_t(n / block_elems(t)) * block_bytes(t); }

constexpr std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "f32";
    case DType::F16: return "f16";
    case DType::BF16: return "bf16";
    case DType::Q8_0: return "q8_0";
    case DType::Q4_0: return "q4_0";
    case DType::I32: return "i32";
  }
  return "?";
}

}  // namespace mf
