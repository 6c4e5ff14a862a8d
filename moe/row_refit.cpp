#include "moe/row_refit.h"

#include <algorithm>
#include <cmath>
#include <functional>

#include <Eigen/Core>
#include <Eigen/Eigenvalues>

#include "core/error.h"

namespace mf {

namespace {

using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Blocks = std::vector<RowMat>;  // one [k, E] matrix per re-fitted weight matrix

float silu(float z) { return z / (1.0f + std::exp(-z)); }
float silu_grad(float z) {  // sigma(z) (1 + z (1 - sigma(z)))
  const float sg = 1.0f / (1.0f + std::exp(-z));
  return sg * (1.0f + z * (1.0f - sg));
}
// gelu_tanh(z) = z/2 (1 + tanh(u)), u = sqrt(2/pi) (z + 0.044715 z^3), as ops::geglu computes it.
constexpr float kGeluC = 0.7978845608028654f, kGeluA = 0.044715f;
float gelu(float z) { return 0.5f * z * (1.0f + std::tanh(kGeluC * (z + kGeluA * z * z * z))); }
float gelu_grad(float z) {  // (1 + tanh u)/2 + z/2 (1 - tanh^2 u) du/dz
  const float t = std::tanh(kGeluC * (z + kGeluA * z * z * z));
  return 0.5f * (1.0f + t) + 0.5f * z * (1.0f - t * t) * kGeluC * (1.0f + 3.0f * kGeluA * z * z);
}
using ActFn = float (*)(float);
ActFn act_fn(FfnAct a) { return a == FfnAct::GeluTanh ? &gelu : &silu; }
ActFn act_grad_fn(FfnAct a) { return a == FfnAct::GeluTanh ? &gelu_grad : &silu_grad; }

double dot(const Blocks& a, const Blocks& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += double(a[i].cwiseProduct(b[i]).sum());
  return s;
}

// Runs fn(chunk, begin, end) over token chunks of about 2048 tokens, on the pool if there is one.
// Sums are kept per chunk and added in chunk order, and the chunks do not depend on the thread
// count, so neither do the results.
class TokenChunks {
 public:
  TokenChunks(int64_t tokens, ThreadPool* pool)
      : tokens_(tokens), pool_(pool), n_(std::clamp<int64_t>(tokens / 2048, 1, 64)) {}
  int64_t count() const { return n_; }
  void run(const std::function<void(int64_t, int64_t, int64_t)>& fn) const {
    auto one = [&](int64_t c) { fn(c, tokens_ * c / n_, tokens_ * (c + 1) / n_); };
    if (!pool_ || n_ == 1) {
      for (int64_t c = 0; c < n_; ++c) one(c);
      return;
    }
    pool_->parallel_for(n_, 1, [&](int, int64_t b, int64_t e) {
      for (int64_t c = b; c < e; ++c) one(c);
    });
  }
  // The sum over tokens of per-chunk block sums part(begin, end, out) (out starts at zero).
  Blocks sum(const std::function<void(int64_t, int64_t, Blocks&)>& part, size_t n_blocks, int64_t rows, int64_t cols) const {
    std::vector<Blocks> partial(size_t(n_), Blocks(n_blocks, RowMat::Zero(rows, cols)));
    run([&](int64_t c, int64_t b, int64_t e) { part(b, e, partial[size_t(c)]); });
    for (size_t c = 1; c < partial.size(); ++c)
      for (size_t i = 0; i < n_blocks; ++i) partial[0][i] += partial[c][i];
    return std::move(partial[0]);
  }

 private:
  int64_t tokens_;
  ThreadPool* pool_;
  int64_t n_;
};

// Least squares in row changes V_b [k, E], one block per coefficient matrix C_b [T, k]: the
// prediction change for token t is  D sum_b (C_b[t] ⊙ (V_b x_t)),  fitted to the residuals R0
// [T, E] with a ridge lambda_b ||V_b||^2, lambda_b = damp * mean(diagonal of block b's normal
// matrix). Preconditioned conjugate gradients on the normal equations.
struct RowSolve {
  Blocks delta;  // [k, E] per block
  int iterations = 0;
};
RowSolve solve_rows(const RowMat& X, const RowMat& R0, const RowMat& D,
                    const Blocks& C, const RowRefitOptions& opts, const TokenChunks& chunks) {
  const size_t nb = C.size();
  const int64_t k = D.cols(), E = D.rows();
  // The normal operator without the ridge, sum_t C_b[t] ⊙ (D^T D (sum_c C_c[t] ⊙ (V_c x_t))) x_t^T,
  // with D^T D formed once: a [k, k] product per token instead of two [k, E] ones.
  const RowMat DtD = D.transpose() * D;  // [k, k]
  auto normal = [&](const Blocks& V) {
    return chunks.sum(
        [&](int64_t b, int64_t e, Blocks& out) {
          const auto x = X.middleRows(b, e - b);  // [n, E]
          RowMat z = C[0].middleRows(b, e - b).cwiseProduct(x * V[0].transpose());  // [n, k]
          for (size_t i = 1; i < nb; ++i) z += C[i].middleRows(b, e - b).cwiseProduct(x * V[i].transpose());
          const RowMat rd = z * DtD;  // [n, k]
          for (size_t i = 0; i < nb; ++i) out[i].noalias() += C[i].middleRows(b, e - b).cwiseProduct(rd).transpose() * x;
        },
        nb, k, E);
  };
  // Minus the gradient at V = 0.
  Blocks R = chunks.sum(
      [&](int64_t b, int64_t e, Blocks& out) {
        const RowMat rd = R0.middleRows(b, e - b) * D;  // [n, k]
        for (size_t i = 0; i < nb; ++i)
          out[i].noalias() += C[i].middleRows(b, e - b).cwiseProduct(rd).transpose() * X.middleRows(b, e - b);
      },
      nb, k, E);
  // Neuron i's diagonal block of block b's normal matrix is ||d_i||^2 sum_t c_ti^2 x_t x_t^T. The
  // preconditioner approximates it by w_i S, w_i = ||d_i||^2 sum_t c_ti^2 and S = X^T X / T: it
  // keeps the inputs' correlations, which a diagonal (Jacobi) preconditioner misses and which
  // made conjugate gradients converge about three times slower. With the ridge,
  // (w_i S + lambda I)^-1 = Q diag(1 / (w_i s_j + lambda)) Q^T where S = Q diag(s) Q^T.
  const Blocks xx = chunks.sum(
      [&](int64_t b, int64_t e, Blocks& out) { out[0].noalias() += X.middleRows(b, e - b).transpose() * X.middleRows(b, e - b); },
      1, E, E);  // [E, E]
  // Per block: sum_t c_ti^2 [1, k], then sum_t c_ti^2 ||x_t||^2 [1, k] (the diagonal's row sums).
  const Blocks c_sq = chunks.sum(
      [&](int64_t b, int64_t e, Blocks& out) {
        const Eigen::RowVectorXf x_sq = X.middleRows(b, e - b).rowwise().squaredNorm().transpose();  // [n]
        for (size_t i = 0; i < nb; ++i) {
          const RowMat c2 = C[i].middleRows(b, e - b).cwiseAbs2();  // [n, k]
          out[2 * i] += c2.colwise().sum();
          out[2 * i + 1].noalias() += x_sq * c2;
        }
      },
      2 * nb, 1, k);
  const Eigen::RowVectorXf d2 = D.colwise().squaredNorm();  // [k]
  const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXf> eig(Eigen::MatrixXf(xx[0]) / float(X.rows()));
  const Eigen::MatrixXf& Q = eig.eigenvectors();                         // [E, E]
  const Eigen::RowVectorXf s_eig = eig.eigenvalues().cwiseMax(0.0f).transpose();  // [E]
  std::vector<Eigen::RowVectorXf> w(nb);
  std::vector<float> lambda(nb);
  for (size_t i = 0; i < nb; ++i) {
    w[i] = c_sq[2 * i].row(0).cwiseProduct(d2);
    lambda[i] = float(opts.damp * double(c_sq[2 * i + 1].row(0).cwiseProduct(d2).sum()) / double(k * E));
  }
  auto precondition = [&](size_t i, const RowMat& r) {
    RowMat rq = r * Q;  // [k, E]
    for (int64_t a = 0; a < k; ++a) rq.row(a).array() /= w[i](a) * s_eig.array() + lambda[i];
    return RowMat(rq * Q.transpose());
  };
  RowSolve out;
  Blocks Z(nb), P;
  for (size_t i = 0; i < nb; ++i) out.delta.push_back(RowMat::Zero(k, E)), Z[i] = precondition(i, R[i]);
  P = Z;
  const double r0 = std::sqrt(dot(R, R));
  double rz = dot(R, Z);
  for (int it = 0; it < opts.max_iterations && r0 > 0; ++it) {
    Blocks HP = normal(P);
    for (size_t i = 0; i < nb; ++i) HP[i] += lambda[i] * P[i];
    const double php = dot(P, HP);
    if (!(php > 0)) break;
    const float alpha = float(rz / php);
    for (size_t i = 0; i < nb; ++i) out.delta[i] += alpha * P[i], R[i] -= alpha * HP[i];
    out.iterations = it + 1;
    if (std::sqrt(dot(R, R)) < opts.tolerance * r0) break;
    for (size_t i = 0; i < nb; ++i) Z[i] = precondition(i, R[i]);
    const double rz_next = dot(R, Z);
    for (size_t i = 0; i < nb; ++i) P[i] = Z[i] + float(rz_next / rz) * P[i];
    rz = rz_next;
  }
  return out;
}

}  // namespace

RowRefit refit_rows(const std::vector<float>& x, const std::vector<float>& y, int64_t tokens, int64_t n_embd,
                    const std::vector<float>& gate, const std::vector<float>& up, const std::vector<float>& down,
                    const std::vector<float>& bias, int64_t k, const RowRefitOptions& opts, ThreadPool* pool) {
  const int64_t T = tokens, E = n_embd;
  if (T < 1) fail("row re-fit: no calibration tokens");
  if (int64_t(x.size()) != T * E || int64_t(y.size()) != T * E || int64_t(gate.size()) != k * E ||
      int64_t(up.size()) != k * E || int64_t(down.size()) != E * k || int64_t(bias.size()) != E)
    fail("row re-fit: mismatched sizes for ", T, " tokens, ", E, " inputs and ", k, " neurons");
  const TokenChunks chunks(T, pool);
  const ActFn act = act_fn(opts.act);
  // Owned (aligned) copies: Eigen's vectorised reductions over a Map depend on the address's
  // alignment, which would make the result vary from run to run in its last bits.
  const RowMat X = Eigen::Map<const RowMat>(x.data(), T, E), G0 = Eigen::Map<const RowMat>(gate.data(), k, E),
               U0 = Eigen::Map<const RowMat>(up.data(), k, E), D = Eigen::Map<const RowMat>(down.data(), E, k);
  RowMat Zg(T, k), Zu(T, k), R0(T, E);  // gate and up pre-activations, residuals y - b - prediction
  chunks.run([&](int64_t, int64_t b, int64_t e) {
    const auto xs = X.middleRows(b, e - b);  // [n, E]
    Zg.middleRows(b, e - b).noalias() = xs * G0.transpose();
    Zu.middleRows(b, e - b).noalias() = xs * U0.transpose();
    R0.middleRows(b, e - b) = Eigen::Map<const RowMat>(y.data() + b * E, e - b, E);
    R0.middleRows(b, e - b).rowwise() -= Eigen::Map<const Eigen::RowVectorXf>(bias.data(), E);
    R0.middleRows(b, e - b).noalias() -= Zg.middleRows(b, e - b).unaryExpr(act).cwiseProduct(Zu.middleRows(b, e - b)) *
                                         D.transpose();
  });
  // The error of rows G0 + s dG, U0 + s dU, per token.
  auto error = [&](const RowMat* dG, const RowMat* dU, float s) {
    std::vector<double> part(size_t(chunks.count()), 0.0);
    chunks.run([&](int64_t c, int64_t b, int64_t e) {
      const auto xs = X.middleRows(b, e - b);  // [n, E]
      RowMat zg = Zg.middleRows(b, e - b), zu = Zu.middleRows(b, e - b);  // [n, k]
      if (dG) zg.noalias() += s * (xs * dG->transpose());
      if (dU) zu.noalias() += s * (xs * dU->transpose());
      const RowMat a = zg.unaryExpr(act).cwiseProduct(zu) - Zg.middleRows(b, e - b).unaryExpr(act).cwiseProduct(
                                                                Zu.middleRows(b, e - b));  // the change [n, k]
      part[size_t(c)] += double((R0.middleRows(b, e - b) - a * D.transpose()).squaredNorm());
    });
    double sum = 0;
    for (double p : part) sum += p;
    return sum / double(T);
  };
  RowRefit out;
  out.gate = gate, out.up = up;
  out.error_before = out.error_after = error(nullptr, nullptr, 0.0f);
  Blocks C;  // the coefficients of the changes: act'(g.x) (u.x) for the gate [T, k], act(g.x) for up [T, k]
  if (opts.gate) C.push_back(Zg.unaryExpr(act_grad_fn(opts.act)).cwiseProduct(Zu));
  C.push_back(Zg.unaryExpr(act));
  const RowSolve sol = solve_rows(X, R0, D, C, opts, chunks);
  out.iterations = sol.iterations;
  const RowMat* dG = opts.gate ? &sol.delta[0] : nullptr;
  const RowMat& dU = sol.delta.back();
  // Up alone is exact least squares (the whole step lowers the error); the gate is linearised.
  for (float s = 1.0f; s >= 1.0f / 32; s *= 0.5f) {
    const double e = error(dG, &dU, s);
    if (e >= out.error_before) continue;
    out.error_after = e, out.step = s;
    // Computed in owned matrices, then copied: the same bits whatever out's alignment.
    const RowMat up_new = U0 + s * dU;  // [k, E]
    std::copy_n(up_new.data(), k * E, out.up.data());
    if (dG) {
      const RowMat gate_new = G0 + s * *dG;  // [k, E]
      std::copy_n(gate_new.data(), k * E, out.gate.data());
    }
    break;
  }
  return out;
}

DownRefit refit_down_on_samples(const std::vector<float>& x, const std::vector<float>& y, int64_t tokens,
                                int64_t n_embd, const std::vector<float>& gate, const std::vector<float>& up, int64_t k,
                                double damp, FfnAct act) {
  const int64_t T = tokens, E = n_embd;
  if (int64_t(x.size()) != T * E || int64_t(y.size()) != T * E || int64_t(gate.size()) != k * E ||
      int64_t(up.size()) != k * E)
    fail("down re-fit: mismatched sizes for ", T, " tokens, ", E, " inputs and ", k, " neurons");
  const RowMat X = Eigen::Map<const RowMat>(x.data(), T, E), Y = Eigen::Map<const RowMat>(y.data(), T, E),
               G = Eigen::Map<const RowMat>(gate.data(), k, E), U = Eigen::Map<const RowMat>(up.data(), k, E);  // aligned copies
  const RowMat A = (X * G.transpose()).unaryExpr(act_fn(act)).cwiseProduct(X * U.transpose());  // [T, k]
  std::vector<float> gram(static_cast<size_t>(k * k)), sum(static_cast<size_t>(k)), cross(static_cast<size_t>(E * k)),
      out_sum(static_cast<size_t>(E));
  Eigen::Map<RowMat>(gram.data(), k, k) = A.transpose() * A;   // [k, k]
  Eigen::Map<RowMat>(cross.data(), E, k) = Y.transpose() * A;  // [E, k]
  // Column sums go through owned (aligned) vectors: written straight into a Map, Eigen peels
  // the destination's unaligned head into scalar sums of another order, so the bits would
  // follow the heap's layout from run to run.
  const Eigen::RowVectorXf a_sum = A.colwise().sum(), y_sum = Y.colwise().sum();  // [k], [E]
  std::copy_n(a_sum.data(), k, sum.data());
  std::copy_n(y_sum.data(), E, out_sum.data());
  std::vector<int32_t> all(static_cast<size_t>(k));
  for (int64_t i = 0; i < k; ++i) all[size_t(i)] = int32_t(i);
  return refit_down_to(E, k, gram.data(), sum.data(), cross.data(), out_sum.data(), T, all, damp);
}

}  // namespace mf
