#include "adapters/lora_router.h"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace mf {

void FixedRouter::route(int il, int target, const float* x, int64_t n, int64_t n_in, std::vector<LoraTerm>& terms) const {
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

ArrowRouter::ArrowRouter(const std::vector<LoraAdapter>& library, int top_k, float temperature)
    : n_adapter_(int(library.size())), top_k_(top_k), temperature_(temperature) {
  if (library.empty()) fail("arrow routing needs at least one adapter");
  if (top_k < 1) fail("arrow routing: top-k must be at least 1, got ", top_k);
  if (!(temperature > 0)) fail("arrow routing: temperature must be positive");
  const size_t n_layer = library[0].layers.size();
  proto_.resize(n_layer * kNumLoraTargets * size_t(n_adapter_));
  for (size_t il = 0; il < n_layer; ++il)
    for (int t = 0; t < kNumLoraTargets; ++t)
      for (int a = 0; a < n_adapter_; ++a) {
        const LoraModule& m = library[size_t(a)].layers[il][size_t(t)];
        if (m.present()) proto_[(il * kNumLoraTargets + size_t(t)) * size_t(n_adapter_) + size_t(a)] = lora_top_right_singular_vector(m);
      }
}

const std::vector<float>& ArrowRouter::prototype(int il, int target, int a) const {
  return proto_[(size_t(il) * kNumLoraTargets + size_t(target)) * size_t(n_adapter_) + size_t(a)];
}

void ArrowRouter::route(int il, int target, const float* x, int64_t n, int64_t n_in, std::vector<LoraTerm>& terms) const {
  std::vector<std::pair<float, int>> scores;  // (|v . x|, adapter)
  for (int64_t t = 0; t < n; ++t) {
    const float* xr = x + t * n_in;  // [n_in]
    scores.clear();
    for (int a = 0; a < n_adapter_; ++a) {
      const std::vector<float>& v = prototype(il, target, a);
      if (v.empty()) continue;
      float s = 0.0f;
      for (int64_t i = 0; i < n_in; ++i) s += v[size_t(i)] * xr[i];
      scores.emplace_back(std::fabs(s), a);
    }
    if (scores.empty()) continue;
    const size_t k = std::min(size_t(top_k_), scores.size());
    // Highest score first; ties go to the lower index (deterministic).
    std::partial_sort(scores.begin(), scores.begin() + k, scores.end(),
                      [](const auto& p, const auto& q) { return p.first > q.first || (p.first == q.first && p.second < q.second); });
    const float top = scores[0].first;
    float sum = 0.0f;
    for (size_t j = 0; j < k; ++j) sum += std::exp((scores[j].first - top) / temperature_);
    for (size_t j = 0; j < k; ++j)
      terms.push_back(LoraTerm{int32_t(t), int32_t(scores[j].second), std::exp((scores[j].first - top) / temperature_) / sum});
  }
}

}  // namespace mf
