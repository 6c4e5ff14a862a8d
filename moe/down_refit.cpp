#include "moe/down_refit.h"

#include <Eigen/Cholesky>
#include <Eigen/LU>
#include <limits>
#include <Eigen/Core>

#include "core/error.h"

namespace mf {

DownRefit refit_down(const std::vector<float>& w, int64_t n_embd, int64_t n_ff, const float* gram,
                     const float* sum, int64_t tokens, const std::vector<int32_t>& kept, double damp) {
  return refit_down_toward(w, n_embd, n_ff, gram, sum, gram, sum, tokens, kept, damp);
}

DownRefit refit_down_toward(const std::vector<float>& w, int64_t n_embd, int64_t n_ff, const float* gram,
                            const float* sum, const float* cross, const float* target_sum, int64_t tokens,
                            const std::vector<int32_t>& kept, double damp) {
  using Mat = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  if (int64_t(w.size()) != n_embd * n_ff) fail("refit_down: ffn_down has ", w.size(), " values, expected ", n_embd * n_ff);
  if (tokens <= 0) fail("refit_down: no calibration tokens");
  if (damp < 0) fail("refit_down: negative damping ", damp);
  const int64_t k = int64_t(kept.size());
  for (int32_t j : kept)
    if (j < 0 || j >= n_ff) fail("refit_down: neuron ", j, " outside 0..", n_ff - 1);
  const double inv_n = 1.0 / double(tokens);
  Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>> g(gram, n_ff, n_ff);
  Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>> cr(cross, n_ff, n_ff);

  // A = [[G_SS, m_S], [m_S^T, 1]] + ridge on G_SS: [k+1, k+1]
  Mat a(k + 1, k + 1);
  for (int64_t r = 0; r < k; ++r) {
    for (int64_t c = 0; c < k; ++c) a(r, c) = double(g(kept[r], kept[c])) * inv_n;
    a(r, k) = a(k, r) = double(sum[kept[r]]) * inv_n;
  }
  a(k, k) = 1.0;
  const Mat a_plain = a;  // [k+1, k+1] without the ridge, for the error
  double diag = 0;
  for (int64_t r = 0; r < k; ++r) diag += a(r, r);
  const double ridge = damp * (k > 0 ? diag / double(k) : 0.0);
  for (int64_t r = 0; r < k; ++r) a(r, r) += ridge;

  // C = W [X_:S, m_t] (X = E[a_t a^T]; a_t = a and X = G for the plain re-fit): [n_embd, k+1]
  Mat rhs(n_ff, k + 1);  // [n_ff, k+1]
  for (int64_t j = 0; j < n_ff; ++j) {
    for (int64_t c = 0; c < k; ++c) rhs(j, c) = double(cr(j, kept[c])) * inv_n;
    rhs(j, k) = double(target_sum[j]) * inv_n;
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
  out.explained = 2.0 * x.cwiseProduct(c).sum() - (x * a_plain).cwiseProduct(x).sum();
  out.down.resize(size_t(n_embd) * k);
  out.bias.resize(n_embd);
  for (int64_t r = 0; r < n_embd; ++r) {
    for (int64_t col = 0; col < k; ++col) out.down[r * k + col] = float(x(r, col));
    out.bias[r] = float(x(r, k));
  }
  return out;
}

double ffn_output_energy(const std::vector<float>& w, int64_t n_embd, int64_t n_ff, const float* gram, int64_t tokens) {
  using Mat = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  if (int64_t(w.size()) != n_embd * n_ff) fail("ffn_output_energy: ffn_down has ", w.size(), " values, expected ", n_embd * n_ff);
  if (tokens <= 0) fail("ffn_output_energy: no calibration tokens");
  Mat g = Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(gram, n_ff, n_ff)
              .cast<double>();  // [n_ff, n_ff]
  Mat wd = Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(w.data(), n_embd, n_ff)
               .cast<double>();  // [n_embd, n_ff]
  return (wd * g).cwiseProduct(wd).sum() / double(tokens);
}

std::vector<int32_t> obs_removal_order(const std::vector<float>& w, int64_t n_embd, int64_t n_ff, const float* gram,
                                       const float* sum, int64_t tokens, int64_t k, double damp,
                                       const std::vector<int32_t>& forced) {
  using Mat = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  if (int64_t(w.size()) != n_embd * n_ff) fail("obs: ffn_down has ", w.size(), " values, expected ", n_embd * n_ff);
  if (tokens <= 0) fail("obs: no calibration tokens");
  if (k < 1 || k > n_ff) fail("obs: cannot keep ", k, " of ", n_ff, " neurons");
  const int64_t F = n_ff;
  const double inv_n = 1.0 / double(tokens);
  // A = [[G, m], [m^T, 1]] + ridge: [F+1, F+1]; the last index is the bias's constant input.
  Mat a(F + 1, F + 1);
  double diag = 0;
  for (int64_t r = 0; r < F; ++r) {
    for (int64_t c = 0; c < F; ++c) a(r, c) = double(gram[r * F + c]) * inv_n;
    a(r, F) = a(F, r) = double(sum[r]) * inv_n;
    diag += a(r, r);
  }
  a(F, F) = 1.0;
  for (int64_t r = 0; r < F; ++r) a(r, r) += damp * diag / double(F);
  Mat h = a.ldlt().solve(Mat::Identity(F + 1, F + 1));  // A^-1
  if (!h.allFinite()) fail("obs: the second-moment matrix is singular (try a larger damping)");
  Mat x = Mat::Zero(n_embd, F + 1);  // [n_embd, F+1] current down weights and bias
  for (int64_t r = 0; r < n_embd; ++r)
    for (int64_t c = 0; c < F; ++c) x(r, c) = w[r * F + c];
  std::vector<int32_t> removed;
  std::vector<char> alive(F, 1), locked(F, 0);
  for (int32_t j : forced)
    if (j >= 0 && j < F) locked[j] = 1;
  for (int64_t left = F; left > k; --left) {
    int64_t best = -1;
    double best_err = std::numeric_limits<double>::infinity();
    for (int64_t j = 0; j < F; ++j) {
      if (!alive[j] || locked[j]) continue;
      double err = x.col(j).squaredNorm() / std::max(h(j, j), 1e-300);
      if (err < best_err) best_err = err, best = j;
    }
    if (best < 0) break;  // only forced neurons left
    // Remove `best`: the others absorb it (x -= x_:j h_j: / h_jj), then A^-1 without it.
    const double hjj = h(best, best);
    Eigen::VectorXd xj = x.col(best);          // [n_embd]
    Eigen::RowVectorXd hj = h.row(best);      // [F+1]
    x.noalias() -= xj * (hj / hjj);
    h.noalias() -= hj.transpose() * (hj / hjj);  // A^-1 is symmetric: column best = hj^T
    alive[best] = 0;
    removed.push_back(int32_t(best));
    x.col(best).setZero();
    h.row(best).setZero();
    h.col(best).setZero();
  }
  return removed;
}

std::vector<int32_t> obs_select(const std::vector<float>& w, int64_t n_embd, int64_t n_ff, const float* gram,
                                const float* sum, int64_t tokens, int64_t k, double damp,
                                const std::vector<int32_t>& forced) {
  std::vector<char> alive(size_t(n_ff), 1);
  for (int32_t j : obs_removal_order(w, n_embd, n_ff, gram, sum, tokens, k, damp, forced)) alive[size_t(j)] = 0;
  std::vector<int32_t> kept;
  for (int64_t j = 0; j < n_ff; ++j)
    if (alive[j]) kept.push_back(int32_t(j));
  return kept;
}

std::vector<double> obs_scores(const std::vector<float>& w, int64_t n_embd, int64_t n_ff, const float* gram,
                               const float* sum, int64_t tokens, double damp, const std::vector<int32_t>& forced) {
  std::vector<double> score(static_cast<size_t>(n_ff), static_cast<double>(n_ff));  // never removed: above every removed one
  const std::vector<int32_t> order = obs_removal_order(w, n_embd, n_ff, gram, sum, tokens, 1, damp, forced);
  for (size_t i = 0; i < order.size(); ++i) score[size_t(order[i])] = double(i);
  return score;
}

}  // namespace mf
