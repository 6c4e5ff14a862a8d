#include "moe/down_refit.h"

#include <Eigen/Cholesky>
#include <Eigen/Core>

#include "core/error.h"

namespace mf {

DownRefit refit_down(const std::vector<float>& w, int64_t n_embd, int64_t n_ff, const float* gram,
                     const float* sum, int64_t tokens, const std::vector<int32_t>& kept, double damp) {
  using Mat = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  if (int64_t(w.size()) != n_embd * n_ff) fail("refit_down: ffn_down has ", w.size(), " values, expected ", n_embd * n_ff);
  if (tokens <= 0) fail("refit_down: no calibration tokens");
  if (damp < 0) fail("refit_down: negative damping ", damp);
  const int64_t k = int64_t(kept.size());
  for (int32_t j : kept)
    if (j < 0 || j >= n_ff) fail("refit_down: neuron ", j, " outside 0..", n_ff - 1);
  const double inv_n = 1.0 / double(tokens);
  Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>> g(gram, n_ff, n_ff);

  // A = [[G_SS, m_S], [m_S^T, 1]] + ridge on G_SS: [k+1, k+1]
  Mat a(k + 1, k + 1);
  for (int64_t r = 0; r < k; ++r) {
    for (int64_t c = 0; c < k; ++c) a(r, c) = double(g(kept[r], kept[c])) * inv_n;
    a(r, k) = a(k, r) = double(sum[kept[r]]) * inv_n;
  }
  a(k, k) = 1.0;
  double diag = 0;
  for (int64_t r = 0; r < k; ++r) diag += a(r, r);
  const double ridge = damp * (k > 0 ? diag / double(k) : 0.0);
  for (int64_t r = 0; r < k; ++r) a(r, r) += ridge;

  // C = W [G_:S, m]: [n_embd, k+1]
  Mat rhs(n_ff, k + 1);  // [n_ff, k+1]
  for (int64_t j = 0; j < n_ff; ++j) {
    for (int64_t c = 0; c < k; ++c) rhs(j, c) = double(g(j, kept[c])) * inv_n;
    rhs(j, k) = double(sum[j]) * inv_n;
  }
  Mat wd = Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(w.data(), n_embd, n_ff)
               .cast<double>();  // [n_embd, n_ff]
  Mat c = wd * rhs;  // [n_embd, k+1]

  // X A = C with A symmetric positive (semi)definite: solve A X^T = C^T.
  Eigen::LDLT<Mat> ldlt(a);
  if (ldlt.info() != Eigen::Success) fail("refit_down: the kept neurons' second-moment matrix could not be factorised");
  Mat x = ldlt.solve(c.transpose()).transpose();  // [n_embd, k+1]
  if (!x.allFinite()) fail("refit_down: the least-squares solve is not finite (try a larger damping)");

  DownRefit out;
  out.down.resize(size_t(n_embd) * k);
  out.bias.resize(n_embd);
  for (int64_t r = 0; r < n_embd; ++r) {
    for (int64_t col = 0; col < k; ++col) out.down[r * k + col] = float(x(r, col));
    out.bias[r] = float(x(r, k));
  }
  return out;
}

}  // namespace mf
