// Fast LoRA update (ops/lora.h): per term, rank dot products over x (four at a time) and rank
// axpys of bt's rows into y. Rows go to threads only when the batch is large enough to pay for
// the hand-off; a decode step's update is split by output columns by its caller instead
// (lora_add_columns, adapters/lora_library.cpp).
#include <algorithm>
#include <vector>

#include "core/half.h"
#include "ops/cpu/simd.h"
#include "ops/lora.h"

namespace mf::ops {
namespace {

// Eight factor values as f32, and one; T is float or uint16_t (f16).
inline __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
inline __m256 load8(const uint16_t* p) { return simd::load_f16(p); }
inline float load1(const float* p) { return *p; }
inline float load1(const uint16_t* p) { return fp16_to_f32(*p); }

template <typename T>
float dot(const T* a, const float* b, int64_t n) {
  __m256 s = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) s = _mm256_fmadd_ps(load8(a + i), _mm256_loadu_ps(b + i), s);
  float r = simd::hsum(s);
  for (; i < n; ++i) r += load1(a + i) * b[i];
  return r;
}

// t[j] = a[j] . x for j < rank.
template <typename T>
void project(const T* a, int64_t rank, const float* x, int64_t n_in, float* t) {
  int64_t j = 0;
  for (; j + 4 <= rank; j += 4) {
    const T* a0 = a + j * n_in;
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    int64_t i = 0;
    for (; i + 8 <= n_in; i += 8) {
      const __m256 xv = _mm256_loadu_ps(x + i);
      s0 = _mm256_fmadd_ps(load8(a0 + i), xv, s0);
      s1 = _mm256_fmadd_ps(load8(a0 + n_in + i), xv, s1);
      s2 = _mm256_fmadd_ps(load8(a0 + 2 * n_in + i), xv, s2);
      s3 = _mm256_fmadd_ps(load8(a0 + 3 * n_in + i), xv, s3);
    }
    alignas(16) float r[4];
    _mm_store_ps(r, simd::hsum4(s0, s1, s2, s3));
    for (; i < n_in; ++i) {
      r[0] += load1(a0 + i) * x[i];
      r[1] += load1(a0 + n_in + i) * x[i];
      r[2] += load1(a0 + 2 * n_in + i) * x[i];
      r[3] += load1(a0 + 3 * n_in + i) * x[i];
    }
    std::copy_n(r, 4, t + j);
  }
  for (; j < rank; ++j) t[j] = dot(a + j * n_in, x, n_in);
}

// y[o] += sum_j c[j] * bt[j, o] for o in [o0, o1), j < rank (bt's rows are n_out long).
template <typename T>
void expand(const T* bt, int64_t rank, const float* c, float* y, int64_t n_out, int64_t o0, int64_t o1) {
  int64_t o = o0;
  for (; o + 8 <= o1; o += 8) {
    __m256 acc = _mm256_loadu_ps(y + o);
    for (int64_t j = 0; j < rank; ++j) acc = _mm256_fmadd_ps(_mm256_set1_ps(c[j]), load8(bt + j * n_out + o), acc);
    _mm256_storeu_ps(y + o, acc);
  }
  for (; o < o1; ++o)
    for (int64_t j = 0; j < rank; ++j) y[o] += c[j] * load1(bt + j * n_out + o);
}

void project(const LoraFactors& f, int64_t j0, int64_t nj, const float* x, int64_t n_in, float* t) {
  if (f.f16)
    project(static_cast<const uint16_t*>(f.a) + j0 * n_in, nj, x, n_in, t);
  else
    project(static_cast<const float*>(f.a) + j0 * n_in, nj, x, n_in, t);
}

void expand(const LoraFactors& f, const float* c, float* y, int64_t n_out, int64_t o0, int64_t o1) {
  if (f.f16)
    expand(static_cast<const uint16_t*>(f.bt), f.rank, c, y, n_out, o0, o1);
  else
    expand(static_cast<const float*>(f.bt), f.rank, c, y, n_out, o0, o1);
}

void run_terms(std::span<const LoraFactors> adapters, std::span<const LoraTerm> terms, const float* x, int64_t n_in,
               float* y, int64_t n_out, std::vector<float>& t) {
  for (const LoraTerm& term : terms) {
    const LoraFactors& f = adapters[size_t(term.adapter)];
    t.resize(size_t(f.rank));
    project(f, 0, f.rank, x + int64_t(term.row) * n_in, n_in, t.data());  // [rank] = A x
    for (float& v : t) v *= term.coef;
    expand(f, t.data(), y + int64_t(term.row) * n_out, n_out, 0, n_out);  // [n_out] += B (coef t)
  }
}

}  // namespace

void lora_add(std::span<const LoraFactors> adapters, std::span<const LoraTerm> terms, const float* x, int64_t n_in,
              float* y, int64_t n_out, ThreadPool& pool) {
  if (terms.empty()) return;
  // Where each row's terms begin (terms are sorted by row).
  std::vector<size_t> row_start{0};
  for (size_t i = 1; i < terms.size(); ++i)
    if (terms[i].row != terms[i - 1].row) row_start.push_back(i);
  row_start.push_back(terms.size());
  const int64_t n_rows = int64_t(row_start.size()) - 1;
  int64_t flops = 0;
  for (const LoraTerm& term : terms) flops += adapters[size_t(term.adapter)].rank * (n_in + n_out);
  if (n_rows < 2 || flops < (1 << 14) || pool.size() == 1) {
    std::vector<float> t;
    run_terms(adapters, terms, x, n_in, y, n_out, t);
    return;
  }
  pool.parallel_for(n_rows, 1, [&](int, int64_t r0, int64_t r1) {
    std::vector<float> t;
    const size_t b = row_start[size_t(r0)], e = row_start[size_t(r1)];
    run_terms(adapters, terms.subspan(b, e - b), x, n_in, y, n_out, t);
  });
}

void lora_add_columns(std::span<const LoraFactors> adapters, std::span<const LoraTerm> terms, const float* x,
                      int64_t n_in, float* y, int64_t n_out, int64_t o0, int64_t o1, std::vector<float>& t) {
  for (const LoraTerm& term : terms) {
    const LoraFactors& f = adapters[size_t(term.adapter)];
    t.resize(size_t(f.rank));
    project(f, 0, f.rank, x + int64_t(term.row) * n_in, n_in, t.data());  // [rank] = A x
    for (float& v : t) v *= term.coef;
    expand(f, t.data(), y + int64_t(term.row) * n_out, n_out, o0, o1);  // [o0, o1) += B (coef t)
  }
}

void matvec_f32(const float* w, int64_t n_rows, int64_t n, const float* x, float* y) {
  project(w, n_rows, x, n, y);
}

}  // namespace mf::ops
