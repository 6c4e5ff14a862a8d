#include "calib/fingerprint.h"

#include <cstdio>
#include <cstring>
#include <vector>

#include "ops/ops.h"

namespace mf {

namespace {

struct Fnv64 {
  uint64_t h = 1469598103934665603ull;
  void bytes(const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 1099511628211ull;
  }
  void i64(int64_t x) { bytes(&x, sizeof x); }
};

// Hashes the raw bytes of up to 16 rows spread over the tensor, plus its shape and dtype.
void hash_view(Fnv64& f, const TensorView& v) {
  if (!v.data) return f.i64(-1);
  f.i64(int64_t(v.dtype));
  for (int i = 0; i < v.n_dims; ++i) f.i64(v.shape[i]);
  const int64_t rows = v.rows(), step = rows > 16 ? rows / 16 : 1;
  for (int64_t r = 0; r < rows; r += step) f.bytes(v.row(r), v.row_stride());
}

}  // namespace

uint64_t model_fingerprint(const Model& m) {
  Fnv64 f;
  const HParams& hp = m.hp;
  for (int64_t x : {int64_t(hp.n_vocab), int64_t(hp.n_embd), int64_t(hp.n_layer), int64_t(hp.n_head),
                    int64_t(hp.n_head_kv), int64_t(hp.n_ff), int64_t(hp.head_dim)})
    f.i64(x);
  hash_view(f, m.w.tok_embd);
  hash_view(f, m.w.output);
  for (const LayerWeights& l : m.w.layers)
    for (const TensorView* v : {&l.wq, &l.wk, &l.wv, &l.wo, &l.ffn_gate, &l.ffn_up, &l.ffn_down}) hash_view(f, *v);
  return f.h;
}

std::string fingerprint_hex(uint64_t h) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

}  // namespace mf
