// Element types of tensors, including GGML's block-quantised formats.
// Block layouts are GGML's byte for byte (ggml-common.h), so GGUF tensors are used in place.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace mf {

enum class DType : uint8_t {
  F32, F16, BF16, Q8_0, Q4_0, I32,
  Q4_1, Q5_0, Q5_1,                // 32-value blocks
  Q2_K, Q3_K, Q4_K, Q5_K, Q6_K,    // 256-value super-blocks ("k-quants")
};

// Quantised 32-value types store blocks of kQBlock elements along a row.
inline constexpr int kQBlock = 32;
// k-quants store super-blocks of kQK elements (16 or 8 sub-blocks with their own scales).
inline constexpr int kQK = 256;

struct BlockQ8_0 {
  uint16_t d;      // fp16 scale
  int8_t qs[32];   // value = d * qs[i]
};
struct BlockQ4_0 {
  uint16_t d;      // fp16 scale
  uint8_t qs[16];  // low nibbles: elements 0..15, high nibbles: 16..31; value = d * (q - 8)
};
struct BlockQ4_1 {
  uint16_t d, m;   // fp16 scale and minimum
  uint8_t qs[16];  // nibbles as q4_0; value = d * q + m
};
struct BlockQ5_0 {
  uint16_t d;      // fp16 scale
  uint8_t qh[4];   // bit i of this little-endian u32: the 5th bit of element i
  uint8_t qs[16];  // low 4 bits, nibbles as q4_0; value = d * (q - 16)
};
struct BlockQ5_1 {
  uint16_t d, m;   // fp16 scale and minimum
  uint8_t qh[4];   // as q5_0
  uint8_t qs[16];  // value = d * q + m
};
// k-quants: value = d * scale_j * q - dmin * min_j within sub-block j.
struct BlockQ2_K {
  uint8_t scales[16];  // per 16 values: low nibble scale, high nibble min (4 bits each)
  uint8_t qs[64];      // 2-bit codes, four 32-value groups per 32 bytes (shifts 0, 2, 4, 6)
  uint16_t d, dmin;    // fp16 super-block scales of the scales and of the mins
};
struct BlockQ3_K {
  uint8_t hmask[32];   // the 3rd bit of each code (0 means subtract 4)
  uint8_t qs[64];      // low 2 bits, laid out as q2_K
  uint8_t scales[12];  // 16 signed 6-bit scales (offset 32), packed
  uint16_t d;          // fp16 super-block scale
};
struct BlockQ4_K {
  uint16_t d, dmin;    // fp16 super-block scales of the scales and of the mins
  uint8_t scales[12];  // 8 x (6-bit scale, 6-bit min), packed
  uint8_t qs[128];     // per 64 values: 32 bytes, low nibbles then high nibbles
};
struct BlockQ5_K {
  uint16_t d, dmin;
  uint8_t scales[12];  // as q4_K
  uint8_t qh[32];      // 5th bits: bit 2i / 2i+1 of byte l for the pair of sub-blocks i
  uint8_t qs[128];     // low 4 bits, as q4_K
};
struct BlockQ6_K {
  uint8_t ql[128];     // low 4 bits
  uint8_t qh[64];      // high 2 bits
  int8_t scales[16];   // per 16 values
  uint16_t d;          // fp16 super-block scale; value = d * scale * (q - 32)
};
static_assert(sizeof(BlockQ8_0) == 34 && sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20 &&
              sizeof(BlockQ5_0) == 22 && sizeof(BlockQ5_1) == 24);
static_assert(sizeof(BlockQ2_K) == 84 && sizeof(BlockQ3_K) == 110 && sizeof(BlockQ4_K) == 144 &&
              sizeof(BlockQ5_K) == 176 && sizeof(BlockQ6_K) == 210);

constexpr bool is_kquant(DType t) {
  return t == DType::Q2_K || t == DType::Q3_K || t == DType::Q4_K || t == DType::Q5_K || t == DType::Q6_K;
}
// Block-quantised (matmuls quantise the activations first).
constexpr bool is_quantized(DType t) {
  return t != DType::F32 && t != DType::F16 && t != DType::BF16 && t != DType::I32;
}

// Elements per storage block (1 for plain types).
constexpr int block_elems(DType t) { return is_kquant(t) ? kQK : is_quantized(t) ? kQBlock : 1; }

// Bytes per storage block.
constexpr size_t block_bytes(DType t) {
  switch (t) {
    case DType::F32: return 4;
    case DType::F16: return 2;
    case DType::BF16: return 2;
    case DType::Q8_0: return sizeof(BlockQ8_0);
    case DType::Q4_0: return sizeof(BlockQ4_0);
    case DType::I32: return 4;
    case DType::Q4_1: return sizeof(BlockQ4_1);
    case DType::Q5_0: return sizeof(BlockQ5_0);
    case DType::Q5_1: return sizeof(BlockQ5_1);
    case DType::Q2_K: return sizeof(BlockQ2_K);
    case DType::Q3_K: return sizeof(BlockQ3_K);
    case DType::Q4_K: return sizeof(BlockQ4_K);
    case DType::Q5_K: return sizeof(BlockQ5_K);
    case DType::Q6_K: return sizeof(BlockQ6_K);
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
    case DType::Q4_1: return "q4_1";
    case DType::Q5_0: return "q5_0";
    case DType::Q5_1: return "q5_1";
    case DType::Q2_K: return "q2_K";
    case DType::Q3_K: return "q3_K";
    case DType::Q4_K: return "q4_K";
    case DType::Q5_K: return "q5_K";
    case DType::Q6_K: return "q6_K";
  }
  return "?";
}

}  // namespace mf
