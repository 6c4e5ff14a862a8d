// Least-squares re-fit of ffn_up's kept rows (conjugate gradients) against a direct solve of
// the same problem with its normal matrix formed explicitly; the gate's Gauss-Newton step.
#include <gtest/gtest.h>

#include <Eigen/Dense>
#include <cmath>
#include <random>

#include "core/error.h"
#include "moe/expert_builder.h"
#include "moe/row_refit.h"

namespace mf {
namespace {

using MatR = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

double silu(double z) { return z / (1.0 + std::exp(-z)); }
double gelu_tanh(double z) { return 0.5 * z * (1.0 + std::tanh(0.7978845608028654 * (z + 0.044715 * z * z * z))); }

// A small gated FFN layer (SwiGLU, or GeGLU as Gemma's): inputs x [T, E], kept rows gate and up
// [k, E], down [E, k], bias [E]; targets from other up rows plus noise, so the best up rows are
// neither the start nor exact.
struct Problem {
  int64_t T, E, k;
  FfnAct act;
  std::vector<float> x, y, gate, up, down, bias;
  // gate_shift: how far the gate rows behind the targets are from the starting ones.
  explicit Problem(float gate_shift = 0.0f, FfnAct gate_act = FfnAct::SiLU, int64_t tokens = 400, int64_t inputs = 6,
                   int64_t kept = 5)
      : T(tokens), E(inputs), k(kept), act(gate_act) {
    std::mt19937 rng(7);
    std::normal_distribution<float> g(0.0f, 1.0f);
    auto fill = [&](std::vector<float>& v, int64_t n, float scale) {
      for (int64_t i = 0; i < n; ++i) v.push_back(scale * g(rng));
    };
    fill(x, T * E, 1.0f), fill(gate, k * E, 0.7f), fill(up, k * E, 0.7f), fill(down, E * k, 0.5f), fill(bias, E, 0.1f);
    std::vector<float> truth = up, truth_gate = gate;
    for (float& v : truth) v += 0.3f * g(rng);
    for (float& v : truth_gate) v += gate_shift * g(rng);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t r = 0; r < E; ++r) {
        double acc = bias[size_t(r)] + 0.05 * g(rng);
        for (int64_t i = 0; i < k; ++i) acc += down[size_t(r * k + i)] * activation(t, i, truth, truth_gate);
        y.push_back(float(acc));
      }
  }
  double actf(double z) const { return act == FfnAct::GeluTanh ? gelu_tanh(z) : silu(z); }
  // act(gate_i . x_t) * (u_i . x_t) for the rows u [k, E].
  double activation(int64_t t, int64_t i, const std::vector<float>& u) const { return activation(t, i, u, gate); }
  double activation(int64_t t, int64_t i, const std::vector<float>& u, const std::vector<float>& g) const {
    double zg = 0, zu = 0;
    for (int64_t j = 0; j < E; ++j) zg += g[size_t(i * E + j)] * x[size_t(t * E + j)], zu += u[size_t(i * E + j)] * x[size_t(t * E + j)];
    return actf(zg) * zu;
  }
  double error(const std::vector<float>& u) const {  // mean over tokens of the squared error
    double e = 0;
    for (int64_t t = 0; t < T; ++t)
      for (int64_t r = 0; r < E; ++r) {
        double p = bias[size_t(r)];
        for (int64_t i = 0; i < k; ++i) p += down[size_t(r * k + i)] * activation(t, i, u);
        e += (y[size_t(t * E + r)] - p) * (y[size_t(t * E + r)] - p);
      }
    return e / double(T);
  }
  // The direct solution in changes of the up rows (unknown i*E+j) and, with `gate`, first of the
  // gate rows: each token's prediction row r is linear in them, down_ri * act(z_i) * x_tj for
  // up and down_ri * act'(z_i) * (u_i.x_t) * x_tj for the gate, act' by central differences
  // (the Gauss-Newton linearisation); a ridge of lambda_fraction times each block's mean
  // diagonal. Returns the rows after the whole step: [gate (with `gate`), up].
  std::vector<float> direct(double lambda_fraction, bool with_gate = false) const {
    const int64_t nb = with_gate ? 2 : 1, n_up = k * E;
    MatR a(T * E, nb * n_up);  // [T*E, nb*k*E]
    Eigen::VectorXd b(T * E);
    for (int64_t t = 0; t < T; ++t) {
      for (int64_t i = 0; i < k; ++i) {
        double zg = 0, zu = 0;
        for (int64_t j = 0; j < E; ++j) zg += gate[size_t(i * E + j)] * x[size_t(t * E + j)], zu += up[size_t(i * E + j)] * x[size_t(t * E + j)];
        const double h = 1e-4, dact = (actf(zg + h) - actf(zg - h)) / (2 * h);
        for (int64_t r = 0; r < E; ++r)
          for (int64_t j = 0; j < E; ++j) {
            const double dx = down[size_t(r * k + i)] * x[size_t(t * E + j)];
            a(t * E + r, (nb - 1) * n_up + i * E + j) = dx * actf(zg);
            if (with_gate) a(t * E + r, i * E + j) = dx * dact * zu;
          }
      }
      for (int64_t r = 0; r < E; ++r) {
        double pred = bias[size_t(r)];
        for (int64_t i = 0; i < k; ++i) pred += down[size_t(r * k + i)] * activation(t, i, up);
        b(t * E + r) = y[size_t(t * E + r)] - pred;
      }
    }
    MatR n = a.transpose() * a;  // [nb*k*E, nb*k*E]
    for (int64_t blk = 0; blk < nb; ++blk) {
      const double lambda = lambda_fraction * n.diagonal().segment(blk * n_up, n_up).mean();
      n.diagonal().segment(blk * n_up, n_up).array() += lambda;
    }
    const Eigen::VectorXd delta = n.ldlt().solve(a.transpose() * b);
    std::vector<float> rows;
    if (with_gate) rows = gate;
    rows.insert(rows.end(), up.begin(), up.end());
    for (int64_t i = 0; i < nb * n_up; ++i) rows[size_t(i)] += float(delta(i));
    return rows;
  }
};

RowRefit refit(const Problem& p, bool gate, double damp, int iterations, double tolerance = 1e-3, ThreadPool* pool = nullptr) {
  RowRefitOptions o;
  o.gate = gate, o.damp = damp, o.max_iterations = iterations, o.tolerance = tolerance, o.act = p.act;
  return refit_rows(p.x, p.y, p.T, p.E, p.gate, p.up, p.down, p.bias, p.k, o, pool);
}

TEST(RowRefit, UpEqualsTheDirectLeastSquaresSolution) {
  const Problem p;
  ThreadPool pool(3);
  for (double damp : {0.0, 0.05}) {
    for (ThreadPool* tp : {static_cast<ThreadPool*>(nullptr), &pool}) {
      const RowRefit r = refit(p, false, damp, 200, 1e-7, tp);
      const std::vector<float> want = p.direct(damp);
      double diff = 0, scale = 0;
      for (size_t i = 0; i < want.size(); ++i) diff += std::pow(r.up[i] - want[i], 2), scale += std::pow(want[i], 2);
      EXPECT_LT(std::sqrt(diff), 1e-3 * std::sqrt(scale)) << "damp " << damp;
      EXPECT_EQ(r.gate, p.gate);
      EXPECT_EQ(r.step, 1.0f);
      EXPECT_NEAR(r.error_before, p.error(p.up), 1e-3 * p.error(p.up));
      EXPECT_NEAR(r.error_after, p.error(r.up), 1e-3 * p.error(r.up));
      EXPECT_LT(r.error_after, 0.5 * r.error_before);
    }
  }
  // Over several token chunks: the same rows with and without threads, bit for bit.
  const Problem big(0.2f, FfnAct::SiLU, 5000);
  RowRefitOptions o;
  o.gate = true;
  const RowRefit one = refit_rows(big.x, big.y, big.T, big.E, big.gate, big.up, big.down, big.bias, big.k, o);
  const RowRefit many = refit_rows(big.x, big.y, big.T, big.E, big.gate, big.up, big.down, big.bias, big.k, o, &pool);
  EXPECT_EQ(one.up, many.up);
  EXPECT_EQ(one.gate, many.gate);
  EXPECT_LT(one.error_after, one.error_before);
  // A few iterations already lower the error; the ridge keeps the rows nearer the start.
  const RowRefit few = refit(p, false, 0.0, 3);
  EXPECT_EQ(few.iterations, 3);
  EXPECT_LT(few.error_after, few.error_before);
  auto distance = [&](const std::vector<float>& u) {
    double d = 0;
    for (size_t i = 0; i < u.size(); ++i) d += std::pow(u[i] - p.up[i], 2);
    return d;
  };
  EXPECT_LT(distance(p.direct(1.0)), distance(p.direct(0.0)));
}

// For SiLU and for Gemma's GELU-tanh: the derivative the re-fit uses is the activation's.
class RowRefitAct : public ::testing::TestWithParam<FfnAct> {};

TEST_P(RowRefitAct, GateUpIsTheGaussNewtonStepAndBeatsUpAlone) {
  const Problem p(0.3f, GetParam());  // targets from other gate rows too
  const RowRefit up = refit(p, false, 0.01, 50), both = refit(p, true, 0.01, 400, 1e-7);
  ASSERT_EQ(both.step, 1.0f);  // the whole step: the rows are the Gauss-Newton solution
  const std::vector<float> want = p.direct(0.01, true);  // [gate, up]
  double diff = 0, scale = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const float got = i < both.gate.size() ? both.gate[i] : both.up[i - both.gate.size()];
    diff += std::pow(got - want[i], 2), scale += std::pow(want[i], 2);
  }
  EXPECT_LT(std::sqrt(diff), 1e-3 * std::sqrt(scale));
  EXPECT_NE(both.gate, p.gate);
  EXPECT_LT(both.error_after, up.error_after);
  // The reported error is the true one with the rows returned (the gate is not linearised there).
  double e = 0;
  for (int64_t t = 0; t < p.T; ++t)
    for (int64_t r = 0; r < p.E; ++r) {
      double pred = p.bias[size_t(r)];
      for (int64_t i = 0; i < p.k; ++i) {
        double zg = 0, zu = 0;
        for (int64_t j = 0; j < p.E; ++j)
          zg += both.gate[size_t(i * p.E + j)] * p.x[size_t(t * p.E + j)], zu += both.up[size_t(i * p.E + j)] * p.x[size_t(t * p.E + j)];
        pred += p.down[size_t(r * p.k + i)] * p.actf(zg) * zu;
      }
      e += std::pow(p.y[size_t(t * p.E + r)] - pred, 2);
    }
  EXPECT_NEAR(both.error_after, e / double(p.T), 1e-3 * e / double(p.T));
}

TEST_P(RowRefitAct, DownOnSamplesEqualsTheFitOfItsOwnActivations) {
  const Problem p(0.0f, GetParam());
  const DownRefit fit = refit_down_on_samples(p.x, p.y, p.T, p.E, p.gate, p.up, p.k, 0.0, p.act);
  // The direct least squares of y on [a, 1].
  MatR a(p.T, p.k + 1), y(p.T, p.E);  // [T, k+1], [T, E]
  for (int64_t t = 0; t < p.T; ++t) {
    for (int64_t i = 0; i < p.k; ++i) a(t, i) = p.activation(t, i, p.up);
    a(t, p.k) = 1.0;
    for (int64_t r = 0; r < p.E; ++r) y(t, r) = p.y[size_t(t * p.E + r)];
  }
  const MatR sol = a.colPivHouseholderQr().solve(y);  // [k+1, E]
  for (int64_t r = 0; r < p.E; ++r) {
    for (int64_t i = 0; i < p.k; ++i) EXPECT_NEAR(fit.down[size_t(r * p.k + i)], sol(i, r), 2e-3 * (1 + std::abs(sol(i, r))));
    EXPECT_NEAR(fit.bias[size_t(r)], sol(p.k, r), 2e-3 * (1 + std::abs(sol(p.k, r))));
  }
}

INSTANTIATE_TEST_SUITE_P(Activations, RowRefitAct, ::testing::Values(FfnAct::SiLU, FfnAct::GeluTanh),
                         [](const ::testing::TestParamInfo<FfnAct>& i) { return i.param == FfnAct::SiLU ? "SiLU" : "GeluTanh"; });


TEST(RowRefit, RejectsBadInput) {
  const Problem p;
  std::vector<float> short_x(p.x.begin(), p.x.end() - 1);
  const RowRefitOptions o;
  EXPECT_THROW(refit_rows(short_x, p.y, p.T, p.E, p.gate, p.up, p.down, p.bias, p.k, o), Error);
  EXPECT_THROW(refit_rows(p.x, p.y, 0, p.E, p.gate, p.up, p.down, p.bias, p.k, o), Error);
  EXPECT_THROW(refit_rows(p.x, p.y, p.T, p.E, p.gate, p.up, p.down, p.bias, p.k + 1, o), Error);
  EXPECT_THROW(refit_down_on_samples(p.x, p.y, p.T, p.E, p.gate, short_x, p.k, 0.0), Error);
  // The build options: names, and rows other than down only with the sequential re-fit.
  EXPECT_EQ(parse_refit_rows("gate-up"), RefitRows::GateUp);
  EXPECT_EQ(parse_refit_rows("up"), RefitRows::Up);
  EXPECT_EQ(parse_refit_rows("down"), RefitRows::Down);
  EXPECT_THROW(parse_refit_rows("gate"), Error);
  BuildOptions b;
  b.refit_rows = RefitRows::Up;
  EXPECT_THROW(check_build_options(b), Error);
  b.sequential = true;
  EXPECT_NO_THROW(check_build_options(b));
  b.refit_rounds = 0;
  EXPECT_THROW(check_build_options(b), Error);
}

}  // namespace
}  // namespace mf
