#include "moe/expert.h"

#include "core/error.h"
#include "ops/ops.h"

namespace mf {

RefitRows parse_refit_rows(const std::string& name) {
  for (RefitRows r : {RefitRows::Down, RefitRows::Up, RefitRows::GateUp})
    if (name == refit_rows_name(r)) return r;
  fail("unknown --refit-rows '", name, "' (expected down, up or gate-up)");
}

const char* refit_rows_name(RefitRows r) {
  switch (r) {
    case RefitRows::Down: return "down";
    case RefitRows::Up: return "up";
    case RefitRows::GateUp: return "gate-up";
  }
  return "?";
}

int64_t ffn_weight_bytes(const std::vector<LayerWeights>& layers) {
  int64_t b = 0;
  for (const LayerWeights& l : layers)
    for (const TensorView* t : {&l.ffn_gate, &l.ffn_up, &l.ffn_down, &l.ffn_down_b})
      if (t->data) b += int64_t(t->nbytes());
  return b;
}

int64_t Expert::ffn_bytes() const { return ffn_weight_bytes(layers); }

std::vector<float> dense_down(const Model& model, int layer) {
  const HParams& hp = model.hp;
  const TensorView& d = model.w.layers[size_t(layer)].ffn_down;
  std::vector<float> w(size_t(hp.n_embd) * hp.n_ff);  // [n_embd, n_ff]
  for (int64_t r = 0; r < hp.n_embd; ++r) ops::dequantize_row(d.dtype, d.row(r), w.data() + r * hp.n_ff, hp.n_ff);
  return w;
}

}  // namespace mf
