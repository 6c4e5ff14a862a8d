#include "moe/expert_layout.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "ops/ops.h"

namespace mf {

namespace {

// A [rows, cols] matrix of `dtype` built from f32 rows or copied rows.
struct MatrixBuilder {
  DType dtype;
  int64_t rows, cols;
  std::vector<uint8_t> bytes;
  MatrixBuilder(DType t, int64_t r, int64_t c) : dtype(t), rows(r), cols(c), bytes(size_t(r) * row_bytes(t, c)) {}
  void set_row(int64_t r, const float* x) { ops::quantize_row(dtype, x, bytes.data() + r * row_bytes(dtype, cols), cols); }
  void copy_row(int64_t r, const uint8_t* src) { std::copy_n(src, row_bytes(dtype, cols), bytes.data() + r * row_bytes(dtype, cols)); }
};

}  // namespace

Expert start_expert(const Model& model, const ExpertSpec& spec) {
  Expert e;
  e.name = spec.name;
  e.domain = spec.domain;
  e.subdomain = spec.subdomain;
  e.layers = model.w.layers;
  e.buffers.reserve(size_t(model.hp.n_layer) * 4);  // gate, up, down and the bias per layer at most
  return e;
}

void lay_out_layer(const LayerWeights& dense, const CompactFfn& ffn, std::vector<int32_t> kept, int layer, Expert& e) {
  const int64_t k = int64_t(kept.size()), n_embd = dense.ffn_gate.cols();
  assert(int64_t(e.neurons.size()) == layer && int64_t(ffn.down.size()) == n_embd * k);
  assert(ffn.gate.empty() == ffn.up.empty() && (ffn.gate.empty() || int64_t(ffn.gate.size()) == k * n_embd));
  // gate/up rows are whole rows of the dense matrices, or re-fitted ones quantised again.
  MatrixBuilder gate(dense.ffn_gate.dtype, k, n_embd), up(dense.ffn_up.dtype, k, n_embd),
      down(dense.ffn_down.dtype, n_embd, k);
  for (int64_t r = 0; r < k; ++r) {
    if (ffn.gate.empty()) {
      gate.copy_row(r, dense.ffn_gate.row(kept[r]));
      up.copy_row(r, dense.ffn_up.row(kept[r]));
    } else {
      gate.set_row(r, ffn.gate.data() + r * n_embd);
      up.set_row(r, ffn.up.data() + r * n_embd);
    }
  }
  for (int64_t r = 0; r < n_embd; ++r) down.set_row(r, ffn.down.data() + r * k);
  LayerWeights& l = e.layers[size_t(layer)];
  e.buffers.push_back(std::move(gate.bytes));
  l.ffn_gate = make_view(dense.ffn_gate.dtype, {k, n_embd}, e.buffers.back().data());
  e.buffers.push_back(std::move(up.bytes));
  l.ffn_up = make_view(dense.ffn_up.dtype, {k, n_embd}, e.buffers.back().data());
  e.buffers.push_back(std::move(down.bytes));
  l.ffn_down = make_view(dense.ffn_down.dtype, {n_embd, k}, e.buffers.back().data());
  if (!ffn.bias.empty()) {
    std::vector<uint8_t> bias(size_t(n_embd) * sizeof(float));  // [n_embd] f32
    std::copy_n(reinterpret_cast<const uint8_t*>(ffn.bias.data()), bias.size(), bias.data());
    e.buffers.push_back(std::move(bias));
    l.ffn_down_b = make_view(DType::F32, {n_embd}, e.buffers.back().data());
  }
  e.neurons.push_back(std::move(kept));
}

std::vector<uint8_t> purify_matrix(const TensorView& w, const std::vector<float>& x_sq, double density, DowpScale scale) {
  const int64_t n_out = w.rows(), n_in = w.cols();
  const int64_t keep = std::max<int64_t>(1, std::llround(density * double(n_in)));
  MatrixBuilder out(w.dtype, n_out, n_in);
  std::vector<float> row(n_in);  // [n_in]
  std::vector<double> score(n_in);
  std::vector<int32_t> order(n_in);
  for (int64_t i = 0; i < n_out; ++i) {
    ops::dequantize_row(w.dtype, w.row(i), row.data(), n_in);
    for (int64_t j = 0; j < n_in; ++j) score[j] = std::fabs(row[j]) * std::sqrt(double(x_sq[j]));
    std::iota(order.begin(), order.end(), 0);
    std::nth_element(order.begin(), order.begin() + (keep - 1), order.end(),
                     [&](int32_t a, int32_t b) { return score[a] > score[b] || (score[a] == score[b] && a < b); });
    double total = 0, kept = 0;
    for (int64_t j = 0; j < n_in; ++j) total += score[j] * score[j];
    std::vector<float> pruned(n_in, 0.0f);
    for (int64_t r = 0; r < keep; ++r) {
      pruned[order[r]] = row[order[r]];
      kept += score[order[r]] * score[order[r]];
    }
    if (scale == DowpScale::Energy && kept > 0) {
      float alpha = float(std::sqrt(total / kept));
      for (float& v : pruned) v *= alpha;
    }
    out.set_row(i, pruned.data());
  }
  return std::move(out.bytes);
}

void purify_layers(const Model& model, const ExpertSpec& spec, const LayoutOptions& opts, Expert& e) {
  const HParams& hp = model.hp;
  if (int64_t(spec.stats.size()) != hp.n_layer) fail("expert '", spec.name, "': missing calibration statistics");
  for (int il = 0; il < hp.n_layer; ++il) {
    const LayerWeights& d = model.w.layers[il];
    const LayerStats& st = spec.stats[il];
    LayerWeights& l = e.layers[il];  // full-size views, only their data replaced
    e.buffers.push_back(purify_matrix(d.ffn_gate, st.ffn_in_sq, opts.density, opts.scale));
    l.ffn_gate.data = e.buffers.back().data();
    e.buffers.push_back(purify_matrix(d.ffn_up, st.ffn_in_sq, opts.density, opts.scale));
    l.ffn_up.data = e.buffers.back().data();
    e.buffers.push_back(purify_matrix(d.ffn_down, st.act_sq, opts.density, opts.scale));
    l.ffn_down.data = e.buffers.back().data();
  }
}

}  // namespace mf
