// Least-squares re-fit of ffn_down on kept neurons, against a direct least-squares solve.
#include <gtest/gtest.h>

#include <Eigen/Dense>
#include <algorithm>
#include <random>

#include "core/error.h"
#include "moe/down_refit.h"
#include "moe/expert_builder.h"

namespace mf {
namespace {

using MatR = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Correlated activations with non-zero means: every third neuron mixes two others.
struct Problem {
  int64_t n, F, E;
  MatR h, w;                      // [n, F], [E, F]
  std::vector<float> gram, sum;  // [F, F], [F]
  std::vector<float> wf;         // [E, F]
  explicit Problem(int64_t features = 12, int64_t outputs = 5, int64_t tokens = 500) : n(tokens), F(features), E(outputs) {
    std::mt19937 rng(3);
    std::normal_distribution<double> g(0.0, 1.0);
    h.resize(n, F);
    for (int64_t t = 0; t < n; ++t)
      for (int64_t j = 0; j < F; ++j) h(t, j) = j % 3 == 2 ? 0.7 * h(t, j - 1) - 0.4 * h(t, j - 2) + 0.1 * g(rng) : 0.3 * j + g(rng);
    w.resize(E, F);
    for (int64_t r = 0; r < E; ++r)
      for (int64_t j = 0; j < F; ++j) w(r, j) = g(rng);
    MatR gm = h.transpose() * h;  // [F, F]
    gram.assign(gm.data(), gm.data() + F * F);
    for (int64_t j = 0; j < F; ++j) sum.push_back(float(h.col(j).sum()));
    for (int64_t r = 0; r < E; ++r)
      for (int64_t j = 0; j < F; ++j) wf.push_back(float(w(r, j)));
  }
  // Mean squared error over the tokens of predicting W a by down a_S + bias.
  double error(const std::vector<int32_t>& kept, const std::vector<float>& down, const std::vector<float>& bias) const {
    const int64_t k = int64_t(kept.size());
    double e = 0;
    for (int64_t t = 0; t < n; ++t)
      for (int64_t r = 0; r < E; ++r) {
        double want = w.row(r).dot(h.row(t)), got = bias[r];
        for (int64_t c = 0; c < k; ++c) got += double(down[r * k + c]) * h(t, kept[c]);
        e += (want - got) * (want - got);
      }
    return e / double(n);
  }
};

// Reference: QR least squares on the data matrix [h_S, 1] against the dense outputs.
void expect_direct_solution(const Problem& p, const std::vector<int32_t>& kept, const DownRefit& fit) {
  const int64_t k = int64_t(kept.size());
  MatR x(p.n, k + 1);  // [n, k+1]
  for (int64_t c = 0; c < k; ++c) x.col(c) = p.h.col(kept[c]);
  x.col(k).setOnes();
  MatR y = p.h * p.w.transpose();                     // [n, E]
  MatR sol = x.colPivHouseholderQr().solve(y);         // [k+1, E]
  for (int64_t r = 0; r < p.E; ++r) {
    for (int64_t c = 0; c < k; ++c) EXPECT_NEAR(fit.down[r * k + c], sol(c, r), 1e-4 * (1 + std::fabs(sol(c, r))));
    EXPECT_NEAR(fit.bias[r], sol(k, r), 1e-4 * (1 + std::fabs(sol(k, r))));
  }
}

TEST(DownRefit, EqualsTheDirectLeastSquaresSolution) {
  Problem p;
  std::vector<int32_t> kept = {0, 2, 3, 5, 7, 8};
  expect_direct_solution(p, kept, refit_down(p.wf, p.E, p.F, p.gram.data(), p.sum.data(), p.n, kept, 0.0));
  // One refitter, many kept sets (the candidate widths): each its own direct solution.
  const DownRefitter refitter(p.wf, p.E, p.F, p.gram.data(), p.sum.data(), p.n);
  for (const std::vector<int32_t>& set : {std::vector<int32_t>{1, 4}, kept, std::vector<int32_t>{0, 1, 3, 4, 6, 7, 9, 10, 11}})
    expect_direct_solution(p, set, refitter.fit(set, 0.0));
  EXPECT_THROW(DownRefitter(std::vector<float>(3), p.E, p.F, p.gram.data(), p.sum.data(), p.n), Error);
  EXPECT_THROW(refitter.fit({0, int32_t(p.F)}, 0.0), Error);  // a neuron out of range
}

TEST(DownRefit, KeepingEveryNeuronReturnsTheDenseWeights) {
  Problem p;
  std::vector<int32_t> all(p.F);
  for (int32_t j = 0; j < p.F; ++j) all[j] = j;
  DownRefit fit = refit_down(p.wf, p.E, p.F, p.gram.data(), p.sum.data(), p.n, all, 0.0);
  for (size_t i = 0; i < fit.down.size(); ++i) EXPECT_NEAR(fit.down[i], p.wf[i], 1e-4);
  for (float b : fit.bias) EXPECT_NEAR(b, 0.0f, 1e-4);
}

TEST(DownRefit, BeatsMeanCompensationAndDampingStaysClose) {
  Problem p;
  std::vector<int32_t> kept = {0, 1, 3, 4, 6, 7, 9, 10};
  const int64_t k = int64_t(kept.size());
  // Mean compensation: kept columns unchanged, pruned neurons' mean outputs as the bias.
  std::vector<float> down(p.E * k), bias(p.E, 0.0f);
  for (int64_t r = 0; r < p.E; ++r)
    for (int64_t j = 0, c = 0; j < p.F; ++j)
      if (c < k && kept[c] == j) down[r * k + c++] = p.wf[r * p.F + j];
      else bias[r] += float(p.w(r, j) * p.sum[j] / double(p.n));
  double mean_err = p.error(kept, down, bias);
  DownRefit exact = refit_down(p.wf, p.E, p.F, p.gram.data(), p.sum.data(), p.n, kept, 0.0);
  DownRefit damped = refit_down(p.wf, p.E, p.F, p.gram.data(), p.sum.data(), p.n, kept, 0.01);
  double exact_err = p.error(kept, exact.down, exact.bias), damped_err = p.error(kept, damped.down, damped.bias);
  // The pruned neurons 2, 5, 8, 11 are linear in kept ones up to small noise: the re-fit
  // recovers almost all of them, the mean only their average.
  EXPECT_LT(exact_err, 0.1 * mean_err);
  EXPECT_LE(exact_err, damped_err + 1e-9);
  EXPECT_LT(damped_err, 0.1 * mean_err);  // the ridge costs little
}

TEST(DownRefit, ObsSelectionDropsRedundantNeuronsFirst) {
  Problem p;
  // Neurons 2, 5, 8, 11 are (nearly) linear in the others, so with the re-fit they cost
  // almost nothing to remove; OBS must drop exactly them, whatever their variance.
  std::vector<int32_t> kept = obs_select(p.wf, p.E, p.F, p.gram.data(), p.sum.data(), p.n, 8, 1e-6);
  EXPECT_EQ(kept, (std::vector<int32_t>{0, 1, 3, 4, 6, 7, 9, 10}));
  // Forced neurons stay; the rest is still the cheapest removal.
  std::vector<int32_t> forced = obs_select(p.wf, p.E, p.F, p.gram.data(), p.sum.data(), p.n, 8, 1e-6, {11});
  EXPECT_NE(std::find(forced.begin(), forced.end(), 11), forced.end());
  EXPECT_EQ(forced.size(), 8u);
  DownRefit a = refit_down(p.wf, p.E, p.F, p.gram.data(), p.sum.data(), p.n, forced, 1e-6);
  DownRefit b = refit_down(p.wf, p.E, p.F, p.gram.data(), p.sum.data(), p.n, {0, 1, 3, 4, 6, 9, 10, 11}, 1e-6);
  EXPECT_LE(p.error(forced, a.down, a.bias), p.error({0, 1, 3, 4, 6, 9, 10, 11}, b.down, b.bias) * 1.0001);
  EXPECT_THROW(obs_select(p.wf, p.E, p.F, p.gram.data(), p.sum.data(), p.n, 0, 0.0), Error);
}

TEST(DownRefit, ObsScoresRankNeuronsSoEveryTopKIsObsSelectsSet) {
  Problem p;
  for (const std::vector<int32_t>& forced : {std::vector<int32_t>{}, std::vector<int32_t>{2}}) {
    std::vector<double> score = obs_scores(p.wf, p.E, p.F, p.gram.data(), p.sum.data(), p.n, 1e-6, forced);
    ASSERT_EQ(int64_t(score.size()), p.F);
    for (int64_t k = 1; k <= p.F; ++k) {
      std::vector<int32_t> want = obs_select(p.wf, p.E, p.F, p.gram.data(), p.sum.data(), p.n, k, 1e-6, forced);
      if (int64_t(want.size()) > k) continue;  // more forced neurons than k
      EXPECT_EQ(top_k_neurons(score, k, forced), want) << "k " << k;
    }
    // The redundant neurons are the first removed.
    std::vector<int32_t> order = obs_removal_order(p.wf, p.E, p.F, p.gram.data(), p.sum.data(), p.n, 1, 1e-6, forced);
    EXPECT_EQ(int64_t(order.size()), p.F - 1);
    if (forced.empty()) {
      std::vector<int32_t> first(order.begin(), order.begin() + 4);
      std::sort(first.begin(), first.end());
      EXPECT_EQ(first, (std::vector<int32_t>{2, 5, 8, 11}));
    }
  }
}

// The greedy order written plainly (no shrinking of the matrices): the reference for
// obs_removal_order's bookkeeping. x [E, F+1] the fit on all neurons, h = A^-1.
std::vector<int32_t> plain_obs_order(Eigen::MatrixXd x, Eigen::MatrixXd h, int64_t k) {
  const int64_t F = h.rows() - 1;
  std::vector<int32_t> removed;
  std::vector<char> alive(size_t(F), 1);
  for (int64_t left = F; left > k; --left) {
    int64_t best = -1;
    double best_err = 1e300;
    for (int64_t j = 0; j < F; ++j) {
      if (!alive[size_t(j)]) continue;
      const double err = x.col(j).squaredNorm() / h(j, j);
      if (err < best_err) best_err = err, best = j;
    }
    const Eigen::VectorXd xj = x.col(best);
    const Eigen::RowVectorXd hj = h.row(best);
    for (int64_t r = 0; r < x.rows(); ++r)
      for (int64_t c = 0; c <= F; ++c) x(r, c) -= xj(r) * hj(c) / hj(best);
    for (int64_t r = 0; r <= F; ++r)
      for (int64_t c = 0; c <= F; ++c) h(r, c) -= hj(r) * hj(c) / hj(best);
    alive[size_t(best)] = 0;
    removed.push_back(int32_t(best));
  }
  return removed;
}

TEST(DownRefit, ObsOrderEqualsThePlainGreedyOrder) {
  const Problem p(64, 8, 2000);
  const double damp = 1e-3;
  Eigen::MatrixXd a(p.F + 1, p.F + 1);  // [[G, m], [m^T, 1]] per token, ridge on G
  double diag = 0;
  for (int64_t r = 0; r < p.F; ++r) {
    for (int64_t c = 0; c < p.F; ++c) a(r, c) = double(p.gram[size_t(r * p.F + c)]) / double(p.n);
    a(r, p.F) = a(p.F, r) = double(p.sum[size_t(r)]) / double(p.n);
    diag += a(r, r);
  }
  a(p.F, p.F) = 1.0;
  for (int64_t r = 0; r < p.F; ++r) a(r, r) += damp * diag / double(p.F);
  const Eigen::MatrixXd h = a.inverse();
  Eigen::MatrixXd x = Eigen::MatrixXd::Zero(p.E, p.F + 1);  // the dense weights, no bias
  x.leftCols(p.F) = p.w;
  const std::vector<int32_t> want = plain_obs_order(x, h, 1);
  EXPECT_EQ(obs_removal_order(p.wf, p.E, p.F, p.gram.data(), p.sum.data(), p.n, 1, damp), want);
  // Stopping early gives a prefix of the same order.
  const std::vector<int32_t> part = obs_removal_order(p.wf, p.E, p.F, p.gram.data(), p.sum.data(), p.n, 40, damp);
  EXPECT_EQ(part, std::vector<int32_t>(want.begin(), want.begin() + (p.F - 40)));
}

TEST(DownRefit, ObsTowardTargetsStartsFromTheirFit) {
  Problem p;
  // Outputs y = V h with V [E, F]: the moments refit_down_to and obs_removal_order_to take.
  auto moments = [&](const MatR& v, std::vector<float>& cross, std::vector<float>& ysum) {
    MatR y = p.h * v.transpose(), cm = y.transpose() * p.h;  // [n, E], [E, F]
    cross.assign(cm.data(), cm.data() + p.E * p.F);
    ysum.clear();
    for (int64_t r = 0; r < p.E; ++r) ysum.push_back(float(y.col(r).sum()));
  };
  std::vector<float> cross, ysum;
  // Toward the dense outputs it is plain OBS: the redundant neurons go first.
  moments(p.w, cross, ysum);
  std::vector<int32_t> order = obs_removal_order_to(p.E, p.F, p.gram.data(), p.sum.data(), cross.data(), ysum.data(), p.n, 8, 1e-6);
  std::sort(order.begin(), order.end());
  EXPECT_EQ(order, (std::vector<int32_t>{2, 5, 8, 11}));
  // Toward outputs that only neurons 0, 1, 3, 4 feed, every other neuron costs nothing to
  // remove, whatever its weight in W.
  MatR v = MatR::Zero(p.E, p.F);  // [E, F]
  for (int j : {0, 1, 3, 4}) v.col(j) = p.w.col(j);
  moments(v, cross, ysum);
  order = obs_removal_order_to(p.E, p.F, p.gram.data(), p.sum.data(), cross.data(), ysum.data(), p.n, 4, 1e-9);
  std::sort(order.begin(), order.end());
  EXPECT_EQ(order, (std::vector<int32_t>{2, 5, 6, 7, 8, 9, 10, 11}));
  // Forced neurons stay.
  order = obs_removal_order_to(p.E, p.F, p.gram.data(), p.sum.data(), cross.data(), ysum.data(), p.n, 4, 1e-9, {7});
  EXPECT_EQ(std::find(order.begin(), order.end(), 7), order.end());
  EXPECT_THROW(obs_removal_order_to(p.E, p.F, p.gram.data(), p.sum.data(), cross.data(), ysum.data(), p.n, 0, 0.0), Error);
}

TEST(DownRefit, ExplainedEnergyGivesTheFitsErrorOnTheData) {
  Problem p;
  const double energy = ffn_output_energy(p.wf, p.E, p.F, p.gram.data(), p.n);
  MatR y = p.h * p.w.transpose();  // [n, E]
  EXPECT_NEAR(energy, y.squaredNorm() / double(p.n), 1e-6 * energy);
  for (double damp : {0.0, 0.1}) {  // with a ridge the fit is not the optimum, the identity still holds
    std::vector<int32_t> kept = {1, 2, 4, 6, 9, 10};
    DownRefit fit = refit_down(p.wf, p.E, p.F, p.gram.data(), p.sum.data(), p.n, kept, damp);
    EXPECT_NEAR(energy - fit.explained, p.error(kept, fit.down, fit.bias), 1e-4 * energy) << "damp " << damp;
  }
}

TEST(DownRefit, TowardOtherTargetsEqualsTheDirectSolutionAndItsExplainedEnergy) {
  // The expert sees perturbed activations hp (its pruned earlier layers) but must reproduce
  // the dense outputs y = W h: solve [hp_S, 1] X^T = y directly and compare.
  Problem p;
  std::mt19937 rng(11);
  std::normal_distribution<double> g(0.0, 0.3);
  MatR hp = p.h;  // [n, F]
  for (int64_t t = 0; t < p.n; ++t)
    for (int64_t j = 0; j < p.F; ++j) hp(t, j) = 0.9 * p.h(t, j) + 0.05 * j + g(rng);
  MatR y = p.h * p.w.transpose();                        // [n, E] dense outputs
  MatR gm = hp.transpose() * hp, cm = y.transpose() * hp;  // [F, F], [E, F]
  std::vector<float> gram(gm.data(), gm.data() + p.F * p.F), cross(cm.data(), cm.data() + p.E * p.F), sum, ysum;
  for (int64_t j = 0; j < p.F; ++j) sum.push_back(float(hp.col(j).sum()));
  for (int64_t r = 0; r < p.E; ++r) ysum.push_back(float(y.col(r).sum()));
  std::vector<int32_t> kept = {0, 1, 4, 6, 7, 10};
  const int64_t k = int64_t(kept.size());
  DownRefit fit = refit_down_to(p.E, p.F, gram.data(), sum.data(), cross.data(), ysum.data(), p.n, kept, 0.0);
  MatR x(p.n, k + 1);  // [n, k+1]
  for (int64_t c = 0; c < k; ++c) x.col(c) = hp.col(kept[c]);
  x.col(k).setOnes();
  MatR sol = x.colPivHouseholderQr().solve(y);  // [k+1, E]
  for (int64_t r = 0; r < p.E; ++r) {
    for (int64_t c = 0; c < k; ++c) EXPECT_NEAR(fit.down[r * k + c], sol(c, r), 1e-4 * (1 + std::fabs(sol(c, r))));
    EXPECT_NEAR(fit.bias[r], sol(k, r), 1e-4 * (1 + std::fabs(sol(k, r))));
  }
  MatR pred = x * sol;  // [n, E]
  const double err = (y - pred).squaredNorm() / double(p.n);
  const double energy = ffn_output_energy(p.wf, p.E, p.F, p.gram.data(), p.n);
  EXPECT_NEAR(energy - fit.explained, err, 1e-4 * energy);
  // The plain re-fit, which assumes the expert sees h, does worse on what it really sees.
  DownRefit plain = refit_down(p.wf, p.E, p.F, p.gram.data(), p.sum.data(), p.n, kept, 0.0);
  MatR xp(k + 1, p.E);  // [k+1, E]
  for (int64_t r = 0; r < p.E; ++r) {
    for (int64_t c = 0; c < k; ++c) xp(c, r) = plain.down[r * k + c];
    xp(k, r) = plain.bias[r];
  }
  EXPECT_GT((y - x * xp).squaredNorm() / double(p.n), err * 1.01);
}

TEST(DownRefit, RejectsBadInput) {
  Problem p;
  EXPECT_THROW(refit_down(p.wf, p.E, p.F, p.gram.data(), p.sum.data(), 0, {0, 1}, 0.0), Error);        // no tokens
  EXPECT_THROW(refit_down(p.wf, p.E, p.F, p.gram.data(), p.sum.data(), p.n, {0, 12}, 0.0), Error);     // bad id
  EXPECT_THROW(refit_down(p.wf, p.E + 1, p.F, p.gram.data(), p.sum.data(), p.n, {0, 1}, 0.0), Error);  // bad shape
  EXPECT_THROW(refit_down(p.wf, p.E, p.F, p.gram.data(), p.sum.data(), p.n, {0, 1}, -1.0), Error);     // bad damping
}

}  // namespace
}  // namespace mf
