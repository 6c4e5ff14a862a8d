#include "moe/down_refit.h"

#include <limits>
#include <numeric>

#include <Eigen/Cholesky>
#include <Eigen/Core>
#include <Eigen/LU>

#include "core/error.h"

namespace mf {

namespace {

using Mat = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MapF = Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;

void check_kept(int64_t n_ff, int64_t tokens, const std::vector<int32_t>& kept, double damp) {
  if (tokens <= 0) fail("refit_down: no calibration tokens");
  if (damp < 0) fail("refit_down: negative damping ", damp);
  for (int32_t j : kept)
    if (j < 0 || j >= n_ff) fail("refit_down: neuron ", j, " outside 0..", n_ff - 1);
}

// Solves X A = C for X = [W' b]: A = [[G_SS, m_S], [m_S^T, 1]] (per token, ridge on G_SS) from the
// sums gram [n_ff, n_ff] and sum [n_ff]; c [n_embd, k+1] the per-token target moments.
DownRefit solve_refit(const float* gram, const float* sum, int64_t n_ff, int64_t tokens, const std::vector<int32_t>& kept,
                      double damp, const Mat& c) {
  const int64_t k = int64_t(kept.size()), n_embd = c.rows();
  const double inv_n = 1.0 / double(tokens);
  MapF g(gram, n_ff, n_ff);
  Mat a(k + 1, k + 1);  // [k+1, k+1]
  for (int64_t r = 0; r < k; ++r) {
    for (int64_t col = 0; col < k; ++col) a(r, col) = double(g(kept[r], kept[col])) * inv_n;
    a(r, k) = a(k, r) = double(sum[kept[r]]) * inv_n;
  }
  a(k, k) = 1.0;
  const Mat a_plain = a;  // [k+1, k+1] without the ridge, for the error
  double diag = 0;
  for (int64_t r = 0; r < k; ++r) diag += a(r, r);
  const double ridge = damp * (k > 0 ? diag / double(k) : 0.0);
  for (int64_t r = 0; r < k; ++r) a(r, r) += ridge;

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

}  // namespace

DownRefitter::DownRefitter(const std::vector<float>& w, int64_t n_embd, int64_t n_ff, const float* gram,
                           const float* sum, int64_t tokens)
    : n_embd_(n_embd), n_ff_(n_ff), tokens_(tokens), gram_(gram), sum_(sum) {
  if (int64_t(w.size()) != n_embd * n_ff) fail("refit_down: ffn_down has ", w.size(), " values, expected ", n_embd * n_ff);
  if (tokens <= 0) fail("refit_down: no calibration tokens");
  const double inv_n = 1.0 / double(tokens);
  Mat rhs(n_ff, n_ff + 1);  // [n_ff, n_ff+1] = [G, m] per token
  MapF g(gram, n_ff, n_ff);
  for (int64_t j = 0; j < n_ff; ++j) {
    for (int64_t col = 0; col < n_ff; ++col) rhs(j, col) = double(g(j, col)) * inv_n;
    rhs(j, n_ff) = double(sum[j]) * inv_n;
  }
  wgm_.resize(size_t(n_embd * (n_ff + 1)));
  Eigen::Map<Mat>(wgm_.data(), n_embd, n_ff + 1) = MapF(w.data(), n_embd, n_ff).cast<double>() * rhs;  // [n_embd, n_ff+1]
}

DownRefit DownRefitter::fit(const std::vector<int32_t>& kept, double damp) const {
  check_kept(n_ff_, tokens_, kept, damp);
  const int64_t k = int64_t(kept.size());
  Eigen::Map<const Mat> wgm(wgm_.data(), n_embd_, n_ff_ + 1);
  Mat c(n_embd_, k + 1);  // [n_embd, k+1] = W [G_:S, m] per token
  for (int64_t col = 0; col < k; ++col) c.col(col) = wgm.col(kept[size_t(col)]);
  c.col(k) = wgm.col(n_ff_);
  return solve_refit(gram_, sum_, n_ff_, tokens_, kept, damp, c);
}

DownRefit refit_down(const std::vector<float>& w, int64_t n_embd, int64_t n_ff, const float* gram,
                     const float* sum, int64_t tokens, const std::vector<int32_t>& kept, double damp) {
  return DownRefitter(w, n_embd, n_ff, gram, sum, tokens).fit(kept, damp);
}

DownRefit refit_down_to(int64_t n_embd, int64_t n_ff, const float* gram, const float* sum, const float* out_cross,
                        const float* out_sum, int64_t tokens, const std::vector<int32_t>& kept, double damp) {
  check_kept(n_ff, tokens, kept, damp);
  const int64_t k = int64_t(kept.size());
  const double inv_n = 1.0 / double(tokens);
  MapF yc(out_cross, n_embd, n_ff);  // [n_embd, n_ff] sum of y a^T
  Mat c(n_embd, k + 1);              // [n_embd, k+1] = [E[y a_S^T], E[y]]
  for (int64_t r = 0; r < n_embd; ++r) {
    for (int64_t col = 0; col < k; ++col) c(r, col) = double(yc(r, kept[col])) * inv_n;
    c(r, k) = double(out_sum[r]) * inv_n;
  }
  return solve_refit(gram, sum, n_ff, tokens, kept, damp, c);
}

double ffn_output_energy(const std::vector<float>& w, int64_t n_embd, int64_t n_ff, const float* gram, int64_t tokens) {
  if (int64_t(w.size()) != n_embd * n_ff) fail("ffn_output_energy: ffn_down has ", w.size(), " values, expected ", n_embd * n_ff);
  if (tokens <= 0) fail("ffn_output_energy: no calibration tokens");
  Mat g = Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(gram, n_ff, n_ff)
              .cast<double>();  // [n_ff, n_ff]
  Mat wd = Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(w.data(), n_embd, n_ff)
               .cast<double>();  // [n_embd, n_ff]
  return (wd * g).cwiseProduct(wd).sum() / double(tokens);
}

namespace {

// A = [[G, m], [m^T, 1]] per token + ridge on G: [F+1, F+1]; the last index is the bias's
// constant input.
Mat augmented_moments(const float* gram, const float* sum, int64_t F, int64_t tokens, double damp) {
  const double inv_n = 1.0 / double(tokens);
  Mat a(F + 1, F + 1);
  double diag = 0;
  for (int64_t r = 0; r < F; ++r) {
    for (int64_t c = 0; c < F; ++c) a(r, c) = double(gram[r * F + c]) * inv_n;
    a(r, F) = a(F, r) = double(sum[r]) * inv_n;
    diag += a(r, r);
  }
  a(F, F) = 1.0;
  for (int64_t r = 0; r < F; ++r) a(r, r) += damp * diag / double(F);
  return a;
}

void check_obs(int64_t n_ff, int64_t tokens, int64_t k) {
  if (tokens <= 0) fail("obs: no calibration tokens");
  if (k < 1 || k > n_ff) fail("obs: cannot keep ", k, " of ", n_ff, " neurons");
}

// Greedy structured OBS from the fit x [n_embd, F+1] on all neurons (and the bias) with
// h = A^-1: removes neurons until k are left, cheapest first, returning them in that order.
// Removing neuron b is the rank-one update  h -= u u^T / u_b,  x -= v u^T / u_b  with u = h's
// row b and v = x's column b. Applied one at a time these stream all of h per removal
// (memory-bound, F^3/3 over a full order), so they are applied lazily, kBatch at a time, as
// one matrix product; in between, a removal's u and v are rebuilt from the pending ones, and
// what the choice reads (h's diagonal, x's squared column norms) is updated per removal. The
// matrices shrink to the live neurons whenever a quarter of their columns has gone.
std::vector<int32_t> obs_order(const Mat& x_in, Mat h, int64_t k, const std::vector<int32_t>& forced) {
  constexpr int64_t kBatch = 32;
  const int64_t F = h.rows() - 1, E = x_in.rows();
  if (!h.allFinite() || !x_in.allFinite()) fail("obs: the second-moment matrix is singular (try a larger damping)");
  Mat xt = x_in.transpose();  // [F+1, n_embd]: row j is neuron j's output column
  std::vector<int32_t> removed;
  std::vector<int32_t> id(static_cast<size_t>(F + 1));  // id[c]: the neuron in row/column c (F: the bias)
  std::iota(id.begin(), id.end(), 0);
  std::vector<char> alive(size_t(F + 1), 1), locked(size_t(F + 1), 0);  // by column
  for (int32_t j : forced)
    if (j >= 0 && j < F) locked[size_t(j)] = 1;
  Eigen::VectorXd diag = h.diagonal(), norm = xt.rowwise().squaredNorm();  // [m+1] each: what the choice reads
  Mat U(kBatch, F + 1), V(kBatch, E);  // pending removals' u [m+1] and v [n_embd], as rows
  Eigen::VectorXd d(kBatch);           // and their pivots u_b
  int64_t pending = 0, dead = 0;       // dead: removed columns still in the matrices
  // Applies the pending removals to h and xt, zeroes the removed rows and columns, and
  // recomputes the choice's inputs exactly (the per-removal updates drift in the last bits).
  auto apply = [&] {
    if (pending == 0) return;
    const auto u = U.topRows(pending);                                               // [p, m+1]
    const Mat su = d.head(pending).cwiseInverse().asDiagonal() * u;                  // [p, m+1]
    const Mat sv = d.head(pending).cwiseInverse().asDiagonal() * V.topRows(pending);  // [p, n_embd]
    h.noalias() -= u.transpose() * su;
    xt.noalias() -= u.transpose() * sv;
    for (int64_t c = 0; c < h.rows(); ++c)
      if (!alive[size_t(c)]) h.row(c).setZero(), h.col(c).setZero(), xt.row(c).setZero();
    diag = h.diagonal(), norm = xt.rowwise().squaredNorm();
    pending = 0;
  };
  for (int64_t left = F; left > k; --left) {
    const int64_t m = h.rows() - 1;  // neuron columns; column m is the bias
    int64_t best = -1;
    double best_err = std::numeric_limits<double>::infinity();
    for (int64_t j = 0; j < m; ++j) {
      if (!alive[size_t(j)] || locked[size_t(j)]) continue;
      const double err = norm[j] / std::max(diag[j], 1e-300);
      if (err < best_err) best_err = err, best = j;
    }
    if (best < 0) break;  // only forced neurons left
    // Row `best` of h and column `best` of x as they stand after the pending removals.
    const auto coef = (U.col(best).head(pending).array() / d.head(pending).array()).matrix();  // [p]
    Eigen::RowVectorXd u = h.row(best) - coef.transpose() * U.topRows(pending);   // [m+1]
    Eigen::RowVectorXd v = xt.row(best) - coef.transpose() * V.topRows(pending);  // [n_embd]
    const double ub = u[best];
    // The choice's inputs after this removal: diag_j -= u_j^2 / u_b, and with c_j = u_j / u_b,
    // ||x_j - c_j v||^2 = ||x_j||^2 - 2 c_j <x_j, v> + c_j^2 ||v||^2, where x_j is the column
    // after the pending removals: <x_j, v> = <xt_j, v> - sum_s U_sj <v_s, v> / d_s.
    const Eigen::VectorXd vv = (V.topRows(pending) * v.transpose()).cwiseQuotient(d.head(pending));  // [p]
    const Eigen::VectorXd g = xt * v.transpose() - U.topRows(pending).transpose() * vv;            // [m+1]
    const Eigen::VectorXd c = u.transpose() / ub;                                                   // [m+1]
    diag -= c.cwiseProduct(u.transpose());
    norm += c.cwiseProduct(c * v.squaredNorm() - 2.0 * g);
    U.row(pending) = u, V.row(pending) = v, d[pending] = ub;
    ++pending;
    alive[size_t(best)] = 0;
    removed.push_back(id[size_t(best)]);
    const bool shrink = ++dead * 4 >= m + 1;
    if (pending == kBatch || shrink) apply();
    if (!shrink) continue;
    // Keep only the live columns (and the bias, the last).
    std::vector<int64_t> keep;
    for (int64_t c2 = 0; c2 <= m; ++c2)
      if (alive[size_t(c2)]) keep.push_back(c2);
    const int64_t n = int64_t(keep.size());
    Mat xs(n, E), hs(n, n);  // [n, n_embd], [n, n]
    std::vector<int32_t> ids(static_cast<size_t>(n));
    std::vector<char> locks(static_cast<size_t>(n));
    for (int64_t r = 0; r < n; ++r) {
      xs.row(r) = xt.row(keep[size_t(r)]);
      for (int64_t c2 = 0; c2 < n; ++c2) hs(r, c2) = h(keep[size_t(r)], keep[size_t(c2)]);
      ids[size_t(r)] = id[size_t(keep[size_t(r)])];
      locks[size_t(r)] = locked[size_t(keep[size_t(r)])];
    }
    xt = std::move(xs), h = std::move(hs), id = std::move(ids), locked = std::move(locks);
    alive.assign(size_t(n), 1);
    diag = h.diagonal(), norm = xt.rowwise().squaredNorm();
    U.resize(kBatch, n), V.resize(kBatch, E);
    dead = 0;
  }
  return removed;
}

}  // namespace

std::vector<int32_t> obs_removal_order(const std::vector<float>& w, int64_t n_embd, int64_t n_ff, const float* gram,
                                       const float* sum, int64_t tokens, int64_t k, double damp,
                                       const std::vector<int32_t>& forced) {
  if (int64_t(w.size()) != n_embd * n_ff) fail("obs: ffn_down has ", w.size(), " values, expected ", n_embd * n_ff);
  check_obs(n_ff, tokens, k);
  const int64_t F = n_ff;
  const Mat a = augmented_moments(gram, sum, F, tokens, damp);  // [F+1, F+1]
  Mat x = Mat::Zero(n_embd, F + 1);  // [n_embd, F+1]: with every neuron, the dense weights and no bias fit exactly
  for (int64_t r = 0; r < n_embd; ++r)
    for (int64_t c = 0; c < F; ++c) x(r, c) = w[r * F + c];
  return obs_order(std::move(x), a.ldlt().solve(Mat::Identity(F + 1, F + 1)), k, forced);
}

std::vector<int32_t> obs_removal_order_to(int64_t n_embd, int64_t n_ff, const float* gram, const float* sum,
                                          const float* out_cross, const float* out_sum, int64_t tokens, int64_t k,
                                          double damp, const std::vector<int32_t>& forced) {
  check_obs(n_ff, tokens, k);
  const int64_t F = n_ff;
  const double inv_n = 1.0 / double(tokens);
  const Mat a = augmented_moments(gram, sum, F, tokens, damp);  // [F+1, F+1]
  Mat c(n_embd, F + 1);                                          // [n_embd, F+1] = [E[y a^T], E[y]]
  for (int64_t r = 0; r < n_embd; ++r) {
    for (int64_t j = 0; j < F; ++j) c(r, j) = double(out_cross[r * F + j]) * inv_n;
    c(r, F) = double(out_sum[r]) * inv_n;
  }
  Mat h = a.ldlt().solve(Mat::Identity(F + 1, F + 1));  // A^-1
  Mat x = c * h;                                         // [n_embd, F+1] the fit on all neurons
  return obs_order(std::move(x), std::move(h), k, forced);
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
