#include "adapters/lora_router.h"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "ops/lora.h"
#include "ops/ops.h"

namespace mf {

void FixedRouter::route(int il, int target, const float* x, int64_t n, int64_t n_in, std::vector<LoraTerm>& terms,
                        std::vector<float>&, ThreadPool*, const float*) const {
  for (int64_t t = 0; t < n; ++t)
    for (size_t a = 0; a < w_.size(); ++a) {
      if (w_[a] == 0.0f) continue;
      terms.push_back(LoraTerm{int32_t(t), int32_t(a), w_[a]});
    }
}

std::vector<float> lora_top_right_singular_vector(const LoraModule& m) {
  using Mat = Eigen::MatrixXd;
  // B A = (Qb Rb)(Qa Ra)^T with A^T = Qa Ra [n_in, r] and B = Qb Rb [n_out, r]; so its right
  // singular vectors are Qa times those of the r x r core Rb Ra^T.
  Mat at(m.n_in, m.rank), b(m.n_out, m.rank);
  for (int64_t j = 0; j < m.rank; ++j) {
    for (int64_t i = 0; i < m.n_in; ++i) at(i, j) = m.a[size_t(j * m.n_in + i)];
    for (int64_t o = 0; o < m.n_out; ++o) b(o, j) = m.bt[size_t(j * m.n_out + o)];
  }
  Eigen::HouseholderQR<Mat> qa(at), qb(b);
  const Mat ra = qa.matrixQR().topRows(m.rank).triangularView<Eigen::Upper>();  // [r, r]
  const Mat rb = qb.matrixQR().topRows(m.rank).triangularView<Eigen::Upper>();  // [r, r]
  Eigen::JacobiSVD<Mat> svd(rb * ra.transpose(), Eigen::ComputeFullV);
  const Mat qa_thin = qa.householderQ() * Mat::Identity(m.n_in, m.rank);  // [n_in, r]
  Eigen::VectorXd v = qa_thin * svd.matrixV().col(0);                     // [n_in]
  Eigen::Index imax;
  v.cwiseAbs().maxCoeff(&imax);
  if (v(imax) < 0) v = -v;
  v.normalize();
  std::vector<float> out(size_t(m.n_in));
  for (int64_t i = 0; i < m.n_in; ++i) out[size_t(i)] = float(v(i));
  return out;
}

ArrowRouter::ArrowRouter(const std::vector<LoraAdapter>& library, int top_k, float temperature, bool glider)
    : n_adapter_(int(library.size())), top_k_(top_k), temperature_(temperature), glider_(glider) {
  if (library.empty()) fail("arrow routing needs at least one adapter");
  if (top_k < 1) fail("arrow routing: top-k must be at least 1, got ", top_k);
  if (!(temperature > 0)) fail("arrow routing: temperature must be positive");
  const size_t n_layer = library[0].layers.size();
  proto_.resize(n_layer * kNumLoraTargets);
  for (size_t il = 0; il < n_layer; ++il)
    for (int t = 0; t < kNumLoraTargets; ++t) {
      Prototypes& p = proto_[il * kNumLoraTargets + size_t(t)];
      for (int a = 0; a < n_adapter_; ++a) {
        const LoraModule& m = library[size_t(a)].layers[il][size_t(t)];
        if (!m.present()) continue;
        const std::vector<float> v = lora_top_right_singular_vector(m);
        p.rows.insert(p.rows.end(), v.begin(), v.end());
        p.adapter.push_back(a);
      }
    }
}

const float* ArrowRouter::prototype(int il, int target, int a) const {
  const Prototypes& p = proto_[size_t(il) * kNumLoraTargets + size_t(target)];
  const int64_t n_in = p.adapter.empty() ? 0 : int64_t(p.rows.size() / p.adapter.size());
  for (size_t i = 0; i < p.adapter.size(); ++i)
    if (p.adapter[i] == a) return p.rows.data() + int64_t(i) * n_in;
  return nullptr;
}

void ArrowRouter::route(int il, int target, const float* x, int64_t n, int64_t n_in, std::vector<LoraTerm>& terms,
                        std::vector<float>& scratch, ThreadPool* pool, const float* bias) const {
  const Prototypes& p = proto_[size_t(il) * kNumLoraTargets + size_t(target)];
  const int64_t n_proto = int64_t(p.adapter.size());
  if (n_proto == 0) return;
  scratch.resize(size_t(n * n_proto));
  if (pool)
    ops::matmul(make_view(DType::F32, {n_proto, n_in}, p.rows.data()), x, scratch.data(), n, *pool);  // [n, n_proto] = v . x
  else
    for (int64_t t = 0; t < n; ++t) ops::matvec_f32(p.rows.data(), n_proto, n_in, x + t * n_in, scratch.data() + t * n_proto);
  const size_t k = std::min(size_t(top_k_), size_t(n_proto));
  std::vector<int> order(static_cast<size_t>(n_proto));
  std::vector<float> e(k);
  for (int64_t t = 0; t < n; ++t) {
    float* s = scratch.data() + t * n_proto;  // [n_proto] token scores |v . x| (+ the sequence's bias)
    for (int64_t i = 0; i < n_proto; ++i) {
      s[i] = std::fabs(s[i]) / temperature_ + (bias ? bias[p.adapter[size_t(i)]] : 0.0f);
      order[size_t(i)] = int(i);
    }
    // Highest score first; ties go to the lower index (deterministic).
    std::partial_sort(order.begin(), order.begin() + int64_t(k), order.end(),
                      [&](int i, int j) { return s[i] > s[j] || (s[i] == s[j] && i < j); });
    const float top = s[order[0]];
    float sum = 0.0f;
    for (size_t j = 0; j < k; ++j) sum += e[j] = std::exp(s[order[j]] - top);
    for (size_t j = 0; j < k; ++j) terms.push_back(LoraTerm{int32_t(t), int32_t(p.adapter[size_t(order[j])]), e[j] / sum});
  }
}

namespace {
// v - mean(v), divided by its standard deviation (and by `extra`).
void standardise(const float* v, int64_t n, float* out, double extra = 1.0) {
  double mean = 0, var = 0;
  for (int64_t i = 0; i < n; ++i) mean += v[i];
  mean /= double(n);
  for (int64_t i = 0; i < n; ++i) var += (v[i] - mean) * (v[i] - mean);
  const double inv = 1.0 / (std::sqrt(var / double(n) + 1e-12) * extra);
  for (int64_t i = 0; i < n; ++i) out[i] = float((v[i] - mean) * inv);
}
}  // namespace

GateRouter::GateRouter(const std::vector<LoraAdapter>& library, int top_k, bool glider) : top_k_(top_k), glider_(glider) {
  if (top_k < 1) fail("gate routing: top-k must be at least 1, got ", top_k);
  const size_t n_layer = library.empty() ? 0 : library[0].layers.size();
  gates_.resize(n_layer * kNumLoraTargets);
  bool any = false;
  for (size_t il = 0; il < n_layer; ++il)
    for (int t = 0; t < kNumLoraTargets; ++t)
      for (size_t a = 0; a < library.size(); ++a) {
        const LoraModule& m = library[a].layers[il][size_t(t)];
        if (!m.present() || m.gate.empty()) continue;
        Gates& g = gates_[il * kNumLoraTargets + size_t(t)];
        g.rows.resize(g.rows.size() + m.gate.size());
        standardise(m.gate.data(), int64_t(m.gate.size()), g.rows.data() + g.rows.size() - m.gate.size(),
                    std::sqrt(double(m.gate.size())));
        g.adapter.push_back(int(a));
        any = true;
      }
  if (!any) fail("gate routing: no adapter of the library has gates (train them with lora.gates_for)");
}

void GateRouter::route(int il, int target, const float* x, int64_t n, int64_t n_in, std::vector<LoraTerm>& terms,
                       std::vector<float>& scratch, ThreadPool*, const float* bias) const {
  const Gates& g = gates_[size_t(il) * kNumLoraTargets + size_t(target)];
  const int64_t n_gate = int64_t(g.adapter.size());
  if (n_gate == 0) return;
  scratch.resize(size_t(n_in + n_gate));
  float* xz = scratch.data();           // [n_in] standardised token
  float* s = scratch.data() + n_in;     // [n_gate] scores
  const size_t k = std::min(size_t(top_k_), size_t(n_gate));
  std::vector<int> order(static_cast<size_t>(n_gate));
  std::vector<float> e(k);
  for (int64_t t = 0; t < n; ++t) {
    standardise(x + t * n_in, n_in, xz);
    ops::matvec_f32(g.rows.data(), n_gate, n_in, xz, s);  // [n_gate]
    for (int64_t i = 0; i < n_gate; ++i) {
      if (bias) s[i] += bias[g.adapter[size_t(i)]];
      order[size_t(i)] = int(i);
    }
    std::partial_sort(order.begin(), order.begin() + int64_t(k), order.end(),
                      [&](int i, int j) { return s[i] > s[j] || (s[i] == s[j] && i < j); });
    float sum = 0.0f;
    for (size_t j = 0; j < k; ++j) sum += e[j] = std::exp(s[order[j]] - s[order[0]]);
    for (size_t j = 0; j < k; ++j) terms.push_back(LoraTerm{int32_t(t), int32_t(g.adapter[size_t(order[j])]), e[j] / sum});
  }
}

void GlobalRouter::route(int il, int target, const float* x, int64_t n, int64_t n_in, std::vector<LoraTerm>& terms,
                         std::vector<float>& scratch, ThreadPool*, const float* bias) const {
  if (!bias) return;  // no prior set: the base model
  std::vector<int> order(static_cast<size_t>(n_adapter_));
  for (int i = 0; i < n_adapter_; ++i) order[size_t(i)] = i;
  const size_t k = std::min(size_t(top_k_), order.size());
  std::partial_sort(order.begin(), order.begin() + int64_t(k), order.end(),
                    [&](int i, int j) { return bias[i] > bias[j] || (bias[i] == bias[j] && i < j); });
  scratch.resize(k);
  float sum = 0.0f;
  for (size_t j = 0; j < k; ++j) sum += scratch[j] = std::exp(bias[order[j]] - bias[order[0]]);
  for (int64_t t = 0; t < n; ++t)
    for (size_t j = 0; j < k; ++j) terms.push_back(LoraTerm{int32_t(t), int32_t(order[j]), scratch[j] / sum});
}

}  // namespace mf
