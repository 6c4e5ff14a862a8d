// Model-agnostic kernels. Each op has a scalar reference in ops/reference/ (namespace
// mf::ref, always built, the definition of correct) and a fast AVX2/FMA/F16C path in
// ops/cpu/ (namespace mf::ops, multi-threaded where it pays). Tests compare the two.
// Layout conventions: activations are row-major f32 [n_tokens, width]; weights are
// TensorViews [n_out, n_in] whose rows are f32, f16, bf16, q8_0 or q4_0.
#pragma once
#include <cstdint>
#include <span>

#include "core/tensor.h"
#include "core/thread_pool.h"

namespace mf {

// Attention geometry shared by the reference and the fast path.
struct AttentionParams {
  int64_t n_tokens = 1;   // new query tokens
  int64_t n_past = 0;     // tokens already in the cache before them
  int n_head = 1;
  int n_head_kv = 1;      // n_head % n_head_kv == 0 (GQA)
  int head_dim = 1;
  float scale = 1.0f;     // usually 1/sqrt(head_dim)
  int64_t kv_stride = 0;  // floats between consecutive positions in k/v (n_head_kv*head_dim if 0)
  int64_t window = 0;     // > 0: query at position P sees only keys P-window+1..P (sliding window)
};

namespace ref {
// Scalar references.
void dequantize_row(DType t, const void* src, float* dst, int64_t n);  // n % block_elems == 0
void quantize_row(DType t, const float* src, void* dst, int64_t n);    // f32/f16/bf16/q8_0/q4_0
// y[n_tokens, n_out] = x[n_tokens, n_in] * w[n_out, n_in]^T
void matmul(const TensorView& w, const float* x, float* y, int64_t n_tokens);
// y[t, :] = x[t, :] / sqrt(mean(x[t, :]^2) + eps) * weight   (x may equal y)
void rmsnorm(const float* x, const float* weight, float* y, int64_t n_tokens, int64_t n, float eps);
// Rotates x[n_tokens, n_head, head_dim] in place at positions pos[n_tokens].
// inv_freq[head_dim/2] holds the (possibly scaled) inverse frequencies.
// neox=true: pairs (i, i+head_dim/2) (Hugging Face rotate_half); false: pairs (2i, 2i+1) (GGUF/Meta).
void rope(float* x, const int32_t* pos, int64_t n_tokens, int n_head, int head_dim, const float* inv_freq, bool neox);
// In-place numerically stable softmax of x[n].
void softmax(float* x, int64_t n);
// The first index of the largest value of x[n], NaNs ignored; 0 if n == 0 or all are NaN.
int64_t argmax(const float* x, int64_t n);
// out[i] = silu(gate[i]) * up[i]
void swiglu(const float* gate, const float* up, float* out, int64_t n);
// out[i] = gelu_tanh(gate[i]) * up[i], gelu_tanh(x) = x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
void geglu(const float* gate, const float* up, float* out, int64_t n);
// Causal attention. q, out: [n_tokens, n_head, head_dim]; k, v: [n_past + n_tokens, kv_stride]
// (position-major cache, head h_kv at offset h_kv*head_dim). Query t sees positions <= n_past + t
// (and, with a window, > n_past + t - window).
void attention(const float* q, const float* k, const float* v, float* out, const AttentionParams& p);
}  // namespace ref

namespace ops {
// Fast paths with the same contracts as mf::ref.
void dequantize_row(DType t, const void* src, float* dst, int64_t n);
// Bit-identical to ref::quantize_row; vectorised for q8_0 (the activation format of the
// quantised matmuls), the scalar reference for the others (weights are converted offline).
void quantize_row(DType t, const float* src, void* dst, int64_t n);
// Quantised weights (q8_0, q4_0) multiply x after quantising it to q8_0 per 32-block, as
// GGML does: the result equals ref::matmul on dequantize(quantize_q8_0(x)) up to f32 rounding.
// The other block types quantise x to GGML's vec_dot_type of the weights: q8_0 for q5_0,
// q8_1 for q4_1/q5_1 (with its fp16 s = d sum(q) times the weights' minimum), q8_K for the
// k-quants q2_K..q6_K; the result equals ref::detail::vec_dot (ops/reference/quant_dot.h)
// up to f32 summation order.
void matmul(const TensorView& w, const float* x, float* y, int64_t n_tokens, ThreadPool& pool);
// y_i = matmul(w_i, x) for several weights on one input (q/k/v, gate/up), results identical
// to separate calls. Small batches share one parallel pass over all their rows: decode
// otherwise waits on a thread-pool hand-off per matrix.
void matmul_group(std::span<const TensorView* const> ws, const float* x, std::span<float* const> ys, int64_t n_tokens,
                  ThreadPool& pool);
// The same with one input per weight, y_i = matmul(w_i, x_i) (a MoE's chosen experts' down
// projections in decode); the weights share a type and a width.
void matmul_group(std::span<const TensorView* const> ws, std::span<const float* const> xs, std::span<float* const> ys,
                  int64_t n_tokens, ThreadPool& pool);
// The same product without quantising x: quantised weights are dequantised row by row and
// multiplied in f32 (slower; for comparisons with implementations that compute in f32, such
// as transformers on dequantised weights). Other weight types: as matmul.
void matmul_f32_acts(const TensorView& w, const float* x, float* y, int64_t n_tokens, ThreadPool& pool);
void rmsnorm(const float* x, const float* weight, float* y, int64_t n_tokens, int64_t n, float eps);
void rope(float* x, const int32_t* pos, int64_t n_tokens, int n_head, int head_dim, const float* inv_freq, bool neox);
void softmax(float* x, int64_t n);
int64_t argmax(const float* x, int64_t n);
void swiglu(const float* gate, const float* up, float* out, int64_t n);
void geglu(const float* gate, const float* up, float* out, int64_t n);
void attention(const float* q, const float* k, const float* v, float* out, const AttentionParams& p, ThreadPool& pool);
}  // namespace ops

}  // namespace mf
