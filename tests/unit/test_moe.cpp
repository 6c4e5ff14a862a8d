// Calibration statistics, K-means, expert construction, the router and .moe files.
#include <gtest/gtest.h>

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "calib/calibrate.h"
#include "calib/fingerprint.h"
#include "calib/kmeans.h"
#include "core/error.h"
#include "core/text_file.h"
#include "model/session.h"
#include "moe/down_refit.h"
#include "moe/moe_builder.h"
#include "moe/moe_model.h"
#include "moe/sequential_refit.h"
#include "ops/ops.h"
#include "test_util.h"

namespace mf {
namespace {

const char* kModel = "models/default";

std::vector<DomainCorpus> small_domains() {
  std::vector<DomainCorpus> d;
  for (const char* n : {"code", "math", "prose", "reference"}) d.push_back({n, {std::string("tests/data/moe/") + n + ".txt"}});
  return d;
}

CalibOptions small_opts() {
  CalibOptions o;
  o.tokens_per_domain = 1024;
  o.sample_tokens = 32;
  o.micro_clusters = 4;
  return o;
}

// One calibration shared by the tests below (a few seconds).
const CalibStats& shared_stats(const Model& m) {
  static CalibStats s = [&] {
    ThreadPool pool(2);
    return calibrate(m, small_domains(), small_opts(), pool);
  }();
  return s;
}

const Model& shared_model() {
  static std::unique_ptr<Model> m = load_model(kModel);
  return *m;
}

// Least-squares experts at density 0.5, their forward passes on `pool`.
MoeBuildOptions lsq_options(ThreadPool& pool) {
  MoeBuildOptions o;
  o.build.density = 0.5;
  o.build.compensation = Compensation::LeastSquares;
  o.pool = &pool;
  return o;
}

std::vector<float> last_logits(const Model& m, const std::vector<LayerWeights>* layers, const std::vector<int32_t>& ids) {
  ThreadPool pool(2);
  Session s(m, 64, pool);
  // f32 throughout: a file round trip permutes q/k rows for GGUF's RoPE pairing, and f16
  // rounding of attention inputs would turn its last-bit differences into f16 steps.
  s.set_numerics(Numerics{false, false});
  s.set_layers(layers);
  const float* l = s.eval(ids, false);  // [1, V]
  return std::vector<float>(l, l + m.hp.n_vocab);
}

TEST(KMeans, RecoversSeparatedClustersDeterministically) {
  std::vector<float> pts;
  for (int c = 0; c < 3; ++c)
    for (int i = 0; i < 20; ++i) pts.push_back(10.0f * c + 0.01f * i), pts.push_back(-5.0f * c);
  KMeansResult a = kmeans(pts, 60, 2, 3, 9), b = kmeans(pts, 60, 2, 3, 9);
  EXPECT_EQ(a.assignment, b.assignment);
  for (int c = 0; c < 3; ++c)
    for (int i = 1; i < 20; ++i) EXPECT_EQ(a.assignment[c * 20 + i], a.assignment[c * 20]);
  EXPECT_NE(a.assignment[0], a.assignment[20]);
  EXPECT_NE(a.assignment[20], a.assignment[40]);
}

TEST(Calibrate, StatisticsMatchTheHooksByHand) {
  const Model& m = shared_model();
  const CalibStats& s = shared_stats(m);
  ASSERT_EQ(s.domains.size(), 4u);
  EXPECT_EQ(s.model_fingerprint, fingerprint_hex(model_fingerprint(m)));
  for (const DomainStats& d : s.domains) {
    EXPECT_EQ(d.n_samples(), 1024 / 32);
    EXPECT_EQ(d.n_tokens(), 1024);
    int64_t samples = 0;
    for (const ClusterStats& c : d.clusters) samples += c.n_samples;
    EXPECT_EQ(samples, d.n_samples());
  }
  // The code domain's summed act^2 of layer 2 equals what a hook sees over the same samples.
  std::vector<int32_t> ids = select_calibration_tokens(m, {"tests/data/moe/code.txt"}, 1024, 32, small_opts().sampling);
  ThreadPool pool(2);
  Session sess(m, 32, pool);
  const int64_t F = m.hp.n_ff;
  std::vector<double> want(F, 0.0), want_gram(F * F, 0.0);  // [F], [F, F]
  sess.set_hook([&](const HookEvent& e) {
    if (e.name != "ffn_gate_act" || e.layer != 2) return;
    for (int64_t t = 0; t < e.n_tokens; ++t) {
      const float* a = e.data + t * e.width;  // [F]
      for (int64_t j = 0; j < e.width; ++j) {
        want[j] += double(a[j]) * a[j];
        for (int64_t i = 0; i < e.width; ++i) want_gram[j * F + i] += double(a[j]) * a[i];
      }
    }
  });
  for (size_t off = 0; off < ids.size(); off += 32) {
    sess.reset();
    sess.eval(std::span<const int32_t>(ids.data() + off, 32), false);
  }
  LayerStats got = s.domains[0].pooled_layer(2);
  for (int64_t j = 0; j < m.hp.n_ff; ++j) EXPECT_NEAR(got.act_sq[j], want[j], 1e-3 * (1 + want[j])) << j;
  // The default model is small enough for the Gram matrices under GramMode::Auto.
  ASSERT_TRUE(s.has_gram());
  const std::vector<float>& gram = s.domains[0].act_gram[2];  // [F, F]
  ASSERT_EQ(int64_t(gram.size()), F * F);
  for (int64_t i = 0; i < F * F; i += 37) EXPECT_NEAR(gram[i], want_gram[i], 1e-3 * (1 + std::fabs(want_gram[i]))) << i;
}

TEST(Calibrate, StatsFileRoundTripsAndIsTiedToTheModel) {
  const Model& m = shared_model();
  const CalibStats& s = shared_stats(m);
  std::string path = test::temp_dir() + "/stats.gguf";
  save_calib_stats(s, path);
  CalibStats r = load_calib_stats(path);
  ASSERT_EQ(r.domains.size(), s.domains.size());
  EXPECT_EQ(r.domains[1].embeddings, s.domains[1].embeddings);
  const int last = int(s.n_layer) - 1;
  EXPECT_EQ(r.domains[2].clusters[1].layers[last].act_abs, s.domains[2].clusters[1].layers[last].act_abs);
  EXPECT_EQ(r.domains[3].act_gram[last], s.domains[3].act_gram[last]);
  // The samples' token ids: the calibration tokens of the domain, in order.
  std::vector<int32_t> ids = select_calibration_tokens(m, small_domains()[2].files, 1024, 32, small_opts().sampling);
  ASSERT_EQ(int64_t(s.domains[2].tokens.size()), s.domains[2].n_samples() * s.sample_tokens);
  EXPECT_EQ(s.domains[2].tokens, ids);
  EXPECT_EQ(r.sampling, "spread");
  EXPECT_EQ(r.domains[2].tokens, s.domains[2].tokens);
  EXPECT_NO_THROW(r.check_model(m));
  auto other = load_model("tests/golden/data/models/llama-gqa4-untied");
  EXPECT_THROW(r.check_model(*other), Error);
  // Truncated file: a clear error.
  std::string bytes = test::read_file(path);
  test::write_file(path, bytes.substr(0, bytes.size() / 2));
  EXPECT_THROW(load_calib_stats(path), Error);
}

TEST(Calibrate, MultiLayerEmbeddingsConcatenateTheLayersMeans) {
  const Model& m = shared_model();
  ThreadPool pool(2);
  std::vector<int32_t> ids = tokenize_corpus(m, {"tests/data/moe/math.txt"}, 40);
  const int64_t E = m.hp.n_embd;
  const std::vector<float> both = sequence_embedding(m, ids, {0, 3}, pool);  // [2 * n_embd]
  const std::vector<float> tok = sequence_embedding(m, ids, {0}, pool);      // [n_embd]
  const std::vector<float> mid = sequence_embedding(m, ids, {3}, pool);      // [n_embd]
  ASSERT_EQ(int64_t(both.size()), 2 * E);
  for (int64_t j = 0; j < E; ++j) {
    EXPECT_FLOAT_EQ(both[j], tok[j]) << j;
    EXPECT_FLOAT_EQ(both[E + j], mid[j]) << j;
  }
  // Layer 0 is the mean of the token embedding rows, by hand.
  std::vector<double> want(E, 0.0);
  std::vector<float> row(E);
  for (int32_t t : ids) {
    ops::dequantize_row(m.w.tok_embd.dtype, m.w.tok_embd.row(t), row.data(), E);
    for (int64_t j = 0; j < E; ++j) want[j] += row[j] / double(ids.size());
  }
  for (int64_t j = 0; j < E; ++j) EXPECT_NEAR(tok[j], want[j], 1e-5) << j;
  // A calibration sample's embedding is the same computation.
  CalibOptions o = small_opts();
  o.embed_layers = {0, 3};
  o.tokens_per_domain = 128;
  o.micro_clusters = 1;
  CalibStats s = calibrate(m, {{"math", {"tests/data/moe/math.txt"}}}, o, pool);
  ASSERT_EQ(s.dim, 2 * E);
  std::vector<int32_t> first = tokenize_corpus(m, {"tests/data/moe/math.txt"}, 32);
  const std::vector<float> e0 = sequence_embedding(m, first, {0, 3}, pool);
  for (int64_t j = 0; j < 2 * E; ++j) EXPECT_NEAR(s.domains[0].embeddings[j], e0[j], 1e-5) << j;
  // Bad layer lists.
  EXPECT_THROW(sequence_embedding(m, ids, {}, pool), Error);
  EXPECT_THROW(sequence_embedding(m, ids, {int(m.hp.n_layer) + 1}, pool), Error);
  EXPECT_THROW(sequence_embedding(m, ids, {2, 2}, pool), Error);
}

TEST(Calibrate, SpreadSamplingCoversTheCorpusInWholeSamples) {
  const Model& m = shared_model();
  const Tokenizer& tok = m.require_tokenizer();
  const std::string file = "tests/data/moe/math.txt";
  const std::string text = read_text_file(file);
  const std::vector<int32_t> all = tokenize_corpus(m, {file});
  ASSERT_GT(all.size(), 2000u);
  // Head: the first whole samples.
  std::vector<int32_t> head = select_calibration_tokens(m, {file}, 1000, 32, CalibSampling::Head);
  ASSERT_EQ(head.size(), 992u);
  EXPECT_TRUE(std::equal(head.begin(), head.end(), all.begin()));
  // A budget above the corpus: both take everything there is, in whole samples.
  std::vector<int32_t> spread = select_calibration_tokens(m, {file}, 1 << 20, 32, CalibSampling::Spread);
  EXPECT_EQ(spread, select_calibration_tokens(m, {file}, 1 << 20, 32, CalibSampling::Head));
  EXPECT_EQ(spread.size(), all.size() / 32 * 32);
  // Spread: exactly the budget's samples, in blocks of 256 tokens starting at evenly spaced
  // line starts; the first block is the head of the corpus, and every block is text of it.
  spread = select_calibration_tokens(m, {file}, 1024, 32, CalibSampling::Spread);
  ASSERT_EQ(spread.size(), 1024u);
  EXPECT_TRUE(std::equal(spread.begin(), spread.begin() + 256, all.begin()));
  size_t last = 0;
  for (int b = 0; b < 4; ++b) {
    std::string piece = tok.decode(std::vector<int32_t>(spread.begin() + b * 256, spread.begin() + (b + 1) * 256));
    size_t at = text.find(piece);
    ASSERT_NE(at, std::string::npos) << "block " << b;
    EXPECT_TRUE(at == 0 || text[at - 1] == '\n') << "block " << b << " starts mid-line";
    if (b > 0) {
      EXPECT_GT(at, last) << "block " << b;
    }
    EXPECT_NEAR(double(at) / double(text.size()), b / 4.0, 0.05) << "block " << b;
    last = at;
  }
}

TEST(Calibrate, DefaultEmbeddingLayersAreUpToFourEvenlySpacedBlocksEndingWithTheLast) {
  EXPECT_EQ(default_embed_layers(1), (std::vector<int>{1}));
  EXPECT_EQ(default_embed_layers(3), (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(default_embed_layers(4), (std::vector<int>{1, 2, 3, 4}));
  EXPECT_EQ(default_embed_layers(6), (std::vector<int>{2, 3, 5, 6}));
  EXPECT_EQ(default_embed_layers(30), (std::vector<int>{8, 15, 23, 30}));
}

TEST(Calibrate, RejectsBadCorpora) {
  const Model& m = shared_model();
  ThreadPool pool(2);
  std::string dir = test::temp_dir();
  test::write_file(dir + "/empty.txt", "");
  test::write_file(dir + "/bad.txt", std::string("abc\xff\xfe def", 9));
  EXPECT_THROW(calibrate(m, {{"a", {dir + "/empty.txt"}}}, small_opts(), pool), Error);
  EXPECT_THROW(calibrate(m, {{"a", {dir + "/bad.txt"}}}, small_opts(), pool), Error);
  test::write_file(dir + "/short.txt", "just a few words");
  EXPECT_THROW(calibrate(m, {{"a", {dir + "/short.txt"}}}, small_opts(), pool), Error);  // fewer samples than clusters
  EXPECT_THROW(calibrate(m, {{"a", {"tests/data/moe/code.txt"}}, {"a", {"tests/data/moe/math.txt"}}}, small_opts(), pool), Error);
}

TEST(Experts, FullDensityEqualsDenseAndNeuronsEqualMaskedDense) {
  const Model& m = shared_model();
  const CalibStats& s = shared_stats(m);
  std::vector<int32_t> ids = {5, 77, 1200, 9, 300, 41};
  std::vector<float> dense = last_logits(m, nullptr, ids);
  MoeBuildOptions o;
  o.build.density = 1.0;
  MoeParts full = build_moe(m, s, o);
  std::vector<float> got = last_logits(m, &full.experts[0].layers, ids);
  for (size_t v = 0; v < got.size(); ++v) ASSERT_EQ(got[v], dense[v]);

  // A compact expert computes exactly the dense FFN with the other neurons' outputs removed.
  o.build.density = 0.3;
  o.build.compensation = Compensation::None;  // no bias: exactly the masked dense FFN
  MoeParts part = build_moe(m, s, o);
  const Expert& e = part.experts[1];
  std::vector<std::vector<float>> masked_down(m.hp.n_layer);
  std::vector<LayerWeights> masked = m.w.layers;
  for (int il = 0; il < m.hp.n_layer; ++il) {
    const TensorView& d = m.w.layers[il].ffn_down;  // f32 [n_embd, n_ff]
    ASSERT_EQ(d.dtype, DType::F32);
    masked_down[il].assign(d.f32(), d.f32() + d.numel());
    std::vector<char> keep(m.hp.n_ff, 0);
    for (int32_t j : e.neurons[il]) keep[j] = 1;
    EXPECT_EQ(int64_t(e.neurons[il].size()), neurons_for_density(m, 0.3));
    for (int64_t r = 0; r < m.hp.n_embd; ++r)
      for (int64_t j = 0; j < m.hp.n_ff; ++j)
        if (!keep[j]) masked_down[il][r * m.hp.n_ff + j] = 0.0f;
    masked[il].ffn_down.data = masked_down[il].data();
  }
  std::vector<float> want = last_logits(m, &masked, ids), compact = last_logits(m, &e.layers, ids);
  for (size_t v = 0; v < want.size(); ++v) ASSERT_NEAR(compact[v], want[v], 1e-4f * (1 + std::fabs(want[v])));
}

// Summed least-squares re-fit error of an expert's FFN outputs over all layers.
double refit_error(const Model& m, const DomainStats& ds, const Expert& e) {
  double err = 0;
  for (int il = 0; il < m.hp.n_layer; ++il) {
    const TensorView& d = m.w.layers[il].ffn_down;  // f32 [n_embd, n_ff]
    std::vector<float> w(d.f32(), d.f32() + d.numel());
    const LayerStats st = ds.pooled_layer(il);
    const float* g = ds.act_gram[il].data();
    err += ffn_output_energy(w, m.hp.n_embd, m.hp.n_ff, g, st.tokens) -
           refit_down(w, m.hp.n_embd, m.hp.n_ff, g, st.act_sum.data(), st.tokens, e.neurons[il], BuildOptions{}.refit_damp).explained;
  }
  return err;
}

TEST(Experts, WidthsByErrorKeepTheBudgetAndLowerTheRefitError) {
  const Model& m = shared_model();
  const CalibStats& s = shared_stats(m);
  ASSERT_TRUE(s.has_gram());
  MoeBuildOptions o;
  o.build.density = 0.5;
  o.build.compensation = Compensation::LeastSquares;
  MoeParts uniform = build_moe(m, s, o);
  o.build.widths = LayerWidths::ByError;
  MoeParts by_error = build_moe(m, s, o);
  const int64_t k = neurons_for_density(m, 0.5);
  bool any_uneven = false;
  for (size_t x = 0; x < by_error.experts.size(); ++x) {
    const Expert& e = by_error.experts[x];
    int64_t total = 0;
    for (int il = 0; il < m.hp.n_layer; ++il) {
      const int64_t w = int64_t(e.neurons[il].size());
      total += w;
      any_uneven |= w != k;
      EXPECT_EQ(e.layers[il].ffn_gate.shape[0], w);
      EXPECT_EQ(e.layers[il].ffn_down.shape[1], w);
    }
    EXPECT_EQ(total, k * m.hp.n_layer) << e.name;  // the same neurons, and so the same bytes per token
    const DomainStats& ds = s.domains[e.domain];
    EXPECT_LE(refit_error(m, ds, e), refit_error(m, ds, uniform.experts[x]) * (1 + 1e-9)) << e.name;
  }
  EXPECT_TRUE(any_uneven);
  o.build.compensation = Compensation::Mean;  // the widths come from the re-fit
  EXPECT_THROW(build_moe(m, s, o), Error);
}

TEST(Experts, BuildReportsEveryLayerInOrderAndThePoolChangesNoBytes) {
  const Model& m = shared_model();
  const CalibStats& s = shared_stats(m);
  ThreadPool pool(2);
  MoeBuildOptions o;
  o.build.density = 0.5;
  o.build.compensation = Compensation::LeastSquares;
  o.build.obs_select = true;  // the layers' OBS orders run on the pool when there is one
  o.build.widths = LayerWidths::ByError;
  std::vector<BuildProgress> seen;
  const MoeParts without = build_moe(m, s, o);
  o.pool = &pool;
  const MoeParts with = build_moe(m, s, o, [&](const BuildProgress& p) { seen.push_back(p); });
  const int D = int(s.domains.size()), L = int(m.hp.n_layer);
  ASSERT_EQ(seen.size(), size_t(D * (L + 1)));  // each layer, then each expert done
  double last = -1;
  for (int e = 0; e < D; ++e) {
    for (int l = 1; l <= L; ++l) {
      const BuildProgress& p = seen[size_t(e * (L + 1) + l - 1)];
      EXPECT_EQ(p.expert, e);
      EXPECT_EQ(p.layer, l);
      EXPECT_EQ(p.n_experts, D);
      EXPECT_EQ(p.n_layer, L);
      EXPECT_GT(p.expert_done, 0.0);
    }
    EXPECT_EQ(seen[size_t(e * (L + 1) + L - 1)].expert_done, 1.0);  // the expert's last layer
    EXPECT_EQ(seen[size_t(e * (L + 1) + L)].expert, e + 1);
  }
  for (const BuildProgress& p : seen) {
    EXPECT_GE(p.fraction(), last);
    last = p.fraction();
  }
  EXPECT_DOUBLE_EQ(last, 1.0);
  ASSERT_EQ(with.experts.size(), without.experts.size());
  for (size_t x = 0; x < with.experts.size(); ++x) EXPECT_EQ(with.experts[x].neurons, without.experts[x].neurons);
}

// Hook point `name` [n, width] at `layer` over the windows (default: the FFN activations),
// running `layers` (null: dense).
Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> activations(const Model& m, const std::vector<LayerWeights>* layers,
                                                                                  const RefitWindows& w, int layer,
                                                                                  std::string_view name = "ffn_gate_act") {
  ThreadPool pool(2);
  Session s(m, 256, pool);
  s.set_layers(layers);
  std::vector<double> rows;
  int64_t width = 1;
  s.set_hook([&](const HookEvent& e) {
    if (e.layer == layer && e.name == name) rows.insert(rows.end(), e.data, e.data + e.n_tokens * e.width), width = e.width;
  });
  for (const auto& win : w.windows) {
    s.reset();
    s.eval(win, false);
  }
  return Eigen::Map<Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(rows.data(), int64_t(rows.size()) / width,
                                                                                          width);
}

TEST(Experts, SequentialRefitFitsWhatTheExpertsOwnLayersFeedIt) {
  using MatR = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const Model& m = shared_model();
  const CalibStats& s = shared_stats(m);
  ThreadPool pool(2);
  MoeBuildOptions o = lsq_options(pool);
  MoeParts plain = build_moe(m, s, o);
  o.build.sequential = true;
  o.build.refit_target = RefitTarget::Ffn;
  MoeParts seq = build_moe(m, s, o);
  const int d = 1, L = int(m.hp.n_layer) - 1;
  const Expert &ep = plain.experts[d], &es = seq.experts[d];
  for (int il = 0; il <= L; ++il) EXPECT_EQ(es.neurons[il], ep.neurons[il]);  // same neurons, other weights
  // Layer 0 sees the dense model's own activations: the moments' cross and Gram agree exactly.
  RefitWindows w = refit_windows(calibration_tokens(s, {d}), o.build.sequential_tokens);
  using MapF = Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;
  const int64_t E = m.hp.n_embd, F = m.hp.n_ff;
  RefitMoments m0 = collect_refit_moments(m, m.w.layers, 0, w, RefitTarget::Ffn, pool);
  EXPECT_EQ(m0.tokens, w.tokens());
  MatR wd0 = MapF(m.w.layers[0].ffn_down.f32(), E, F).cast<double>();  // [E, F]
  MatR want = wd0 * MapF(m0.gram.data(), F, F).cast<double>();         // [E, F] sum of (W a) a^T
  EXPECT_LT((MapF(m0.out_cross.data(), E, F).cast<double>() - want).norm(), 1e-4 * want.norm());
  Eigen::VectorXd want_sum = wd0 * Eigen::Map<const Eigen::VectorXf>(m0.sum.data(), F).cast<double>();  // [E]
  EXPECT_LT((Eigen::Map<const Eigen::VectorXf>(m0.out_sum.data(), E).cast<double>() - want_sum).norm(), 1e-4 * want_sum.norm());
  // The last layer, on the activations the expert's pruned earlier layers produce, against the
  // dense outputs on the same tokens: the sequential fit's error is below the plain one's.
  std::vector<LayerWeights> below = es.layers;
  below[L] = m.w.layers[L];
  MatR a = activations(m, &below, w, L), at = activations(m, nullptr, w, L);  // [n, n_ff] each
  const TensorView& dd = m.w.layers[L].ffn_down;                               // f32 [n_embd, n_ff]
  MatR wd = Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(dd.f32(), m.hp.n_embd, m.hp.n_ff).cast<double>();
  MatR y = at * wd.transpose();  // [n, n_embd] dense outputs
  const std::vector<int32_t>& kept = es.neurons[L];
  MatR as(a.rows(), int64_t(kept.size()));  // [n, k]
  for (size_t c = 0; c < kept.size(); ++c) as.col(int64_t(c)) = a.col(kept[c]);
  auto error = [&](const Expert& e) {
    const LayerWeights& l = e.layers[L];
    MatR down = Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(l.ffn_down.f32(), m.hp.n_embd, int64_t(kept.size())).cast<double>();
    Eigen::RowVectorXd bias = Eigen::Map<const Eigen::RowVectorXf>(l.ffn_down_b.f32(), m.hp.n_embd).cast<double>();
    MatR pred = (as * down.transpose()).rowwise() + bias;  // [n, n_embd]
    return (y - pred).squaredNorm() / double(a.rows());
  };
  const double err_seq = error(es), err_plain = error(ep);
  EXPECT_LT(err_seq, err_plain * 0.99) << err_seq << " vs " << err_plain;
  // The residual target: the moments are those of y = dense block output - the expert's stream
  // entering the FFN, and its fit brings the expert's stream after the last layer closer to the
  // dense one than the FFN-output fit on the same inputs.
  o.build.refit_target = RefitTarget::Residual;
  MoeParts res = build_moe(m, s, o);
  const Expert& er = res.experts[d];
  for (int il = 0; il <= L; ++il) EXPECT_EQ(er.neurons[il], ep.neurons[il]);
  std::vector<LayerWeights> below_r = er.layers;
  below_r[L] = m.w.layers[L];
  RefitMoments mr = collect_refit_moments(m, below_r, L, w, RefitTarget::Residual, pool);
  MatR ar = activations(m, &below_r, w, L), xe = activations(m, &below_r, w, L, "ffn_resid");  // [n, F], [n, E]
  MatR bd = activations(m, nullptr, w, L, "block_out");                                          // [n, E]
  MatR yr = bd - xe;                                                                             // [n, E]
  MatR want_r = yr.transpose() * ar;                                                             // [E, F]
  EXPECT_LT((MapF(mr.out_cross.data(), E, F).cast<double>() - want_r).norm(), 1e-4 * want_r.norm());
  MatR ars(ar.rows(), int64_t(kept.size()));  // [n, k]
  for (size_t c = 0; c < kept.size(); ++c) ars.col(int64_t(c)) = ar.col(kept[c]);
  auto stream_error = [&](const std::vector<float>& down, const std::vector<float>& bias) {
    MatR dk = Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(down.data(), E, int64_t(kept.size())).cast<double>();
    MatR pred = (ars * dk.transpose()).rowwise() + Eigen::Map<const Eigen::RowVectorXf>(bias.data(), E).cast<double>();  // [n, E]
    return (yr - pred).squaredNorm() / double(ar.rows());
  };
  const LayerWeights& lr = er.layers[L];
  const std::vector<float> down_r(lr.ffn_down.f32(), lr.ffn_down.f32() + E * int64_t(kept.size()));
  const std::vector<float> bias_r(lr.ffn_down_b.f32(), lr.ffn_down_b.f32() + E);
  RefitMoments mf_ = collect_refit_moments(m, below_r, L, w, RefitTarget::Ffn, pool);
  DownRefit ffn_fit = refit_down_to(E, F, mf_.gram.data(), mf_.sum.data(), mf_.out_cross.data(), mf_.out_sum.data(), mf_.tokens,
                                    kept, o.build.refit_damp);
  const double err_res = stream_error(down_r, bias_r), err_ffn = stream_error(ffn_fit.down, ffn_fit.bias);
  EXPECT_LT(err_res, err_ffn * 0.99) << err_res << " vs " << err_ffn;
  EXPECT_THROW(parse_refit_target("output"), Error);
  // Without token ids (stats of version 4) it is a clear error.
  CalibStats old = s;
  for (DomainStats& ds : old.domains) ds.tokens.clear();
  EXPECT_THROW(build_moe(m, old, o), Error);
  // The CLI defaults: auto is sequential only with lsq and token ids, asked-for sequential fails
  // without either.
  EXPECT_TRUE(parse_refit("auto", Compensation::LeastSquares, s));
  EXPECT_FALSE(parse_refit("auto", Compensation::LeastSquares, old));
  EXPECT_FALSE(parse_refit("auto", Compensation::Mean, s));
  EXPECT_FALSE(parse_refit("plain", Compensation::LeastSquares, s));
  EXPECT_TRUE(parse_refit("sequential", Compensation::LeastSquares, s));
  EXPECT_THROW(parse_refit("sequential", Compensation::LeastSquares, old), Error);
  EXPECT_THROW(parse_refit("sequential", Compensation::Mean, s), Error);
  EXPECT_THROW(parse_refit("layerwise", Compensation::LeastSquares, s), Error);
}

// The sum over the samples of silu(gate x) * (up x) [n_ff] with the dense layer's rows.
std::vector<float> sample_sums(const Model& m, int layer, const SequentialRefit::Samples& smp) {
  const int64_t E = m.hp.n_embd, F = m.hp.n_ff;
  using MapR = Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;
  const MapR x(smp.inputs.data(), smp.tokens, E), g(m.w.layers[size_t(layer)].ffn_gate.f32(), F, E),
      u(m.w.layers[size_t(layer)].ffn_up.f32(), F, E);
  const Eigen::MatrixXf zg = x * g.transpose(), zu = x * u.transpose();  // [tokens, F] each
  const Eigen::MatrixXf a = zg.unaryExpr([](float z) { return z / (1.0f + std::exp(-z)); }).cwiseProduct(zu);
  const Eigen::VectorXf s = a.colwise().sum().transpose();  // [F]
  return std::vector<float>(s.data(), s.data() + F);
}

// The layer-by-layer runner builds use gives the reference's moments at every layer, for both
// targets and for masked windows, as the expert's layers are filled in below each one.
TEST(Experts, SequentialRefitRunnerEqualsFullForwardPasses) {
  using MapF = Eigen::Map<const Eigen::VectorXf>;
  const Model& m = shared_model();
  const CalibStats& s = shared_stats(m);
  ThreadPool pool(2);
  MoeBuildOptions o = lsq_options(pool);
  o.build.sequential = true;
  const MoeParts parts = build_moe(m, s, o);  // (an Expert's views point into its own buffers: keep it in place)
  const Expert& e = parts.experts.at(1);      // any pruned layers will do
  const std::span<const int32_t> stream = calibration_tokens(s, {0}).at(0);
  std::vector<int> sub(s.domains[0].clusters.size());
  for (size_t c = 0; c < sub.size(); ++c) sub[c] = int(c % 2);
  const RefitWindows plain = refit_windows(calibration_tokens(s, {1}), 2048, 128);
  const RefitWindows masked = masked_refit_windows(stream, subdomain_token_mask(s, 0, sub, 1), 2048, 128);
  auto close = [](const std::vector<float>& got, const std::vector<float>& want) {
    const double scale = MapF(want.data(), int64_t(want.size())).cast<double>().norm();
    return (MapF(got.data(), int64_t(got.size())) - MapF(want.data(), int64_t(want.size()))).cast<double>().norm() <=
           1e-5 * scale;
  };
  for (const RefitWindows* w : {&plain, &masked}) {
    for (RefitTarget target : {RefitTarget::Residual, RefitTarget::Ffn}) {
      SequentialRefit runner(m, *w, target, pool);
      runner.keep_samples(true);
      std::vector<LayerWeights> layers = m.w.layers;  // the expert's below `il`, dense from il
      for (int il = 0; il < m.hp.n_layer; ++il) {
        const RefitMoments got = runner.moments(layers), want = collect_refit_moments(m, layers, il, *w, target, pool);
        EXPECT_EQ(got.tokens, want.tokens);
        // The kept samples are the counted tokens' FFN inputs and targets: the dense gate and up
        // rows on those inputs give the activations' sum, and the targets sum to out_sum.
        const SequentialRefit::Samples& smp = runner.samples();
        ASSERT_EQ(smp.tokens, want.tokens);
        EXPECT_TRUE(close(sample_sums(m, il, smp), want.sum)) << "layer " << il;
        std::vector<float> y_sum(size_t(m.hp.n_embd), 0.0f);
        for (int64_t t = 0; t < smp.tokens; ++t)
          for (int64_t j = 0; j < m.hp.n_embd; ++j) y_sum[size_t(j)] += smp.targets[size_t(t * m.hp.n_embd + j)];
        EXPECT_TRUE(close(y_sum, want.out_sum)) << "layer " << il;
        EXPECT_TRUE(close(got.gram, want.gram)) << "layer " << il;
        EXPECT_TRUE(close(got.sum, want.sum)) << "layer " << il;
        EXPECT_TRUE(close(got.out_cross, want.out_cross)) << "layer " << il;
        EXPECT_TRUE(close(got.out_sum, want.out_sum)) << "layer " << il;
        EXPECT_THROW(runner.moments(layers), Error);  // once per layer
        layers[size_t(il)] = e.layers[size_t(il)];
        runner.advance(layers);
      }
      EXPECT_EQ(runner.layer(), m.hp.n_layer);
      EXPECT_THROW(runner.moments(layers), Error);  // every layer is done
    }
  }
  // A pruned layer where the moments need the dense one is an error.
  SequentialRefit runner(m, plain, RefitTarget::Residual, pool);
  EXPECT_THROW(runner.moments(e.layers), Error);
}

// Gemma 3 puts an RMSNorm between the FFN and the residual stream. The sequential re-fit maps
// its targets back through it: for the dense target they are the FFN output itself, the
// layer-by-layer runner agrees with the full passes, and the re-fitted expert (GELU gate and up
// rows included) ends closer to the dense stream than the plain re-fit.
TEST(Experts, SequentialRefitMapsItsTargetsThroughAPostFfnNorm) {
  using MapF = Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;
  using MatR = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const std::unique_ptr<Model> gm = load_model("tests/golden/data/models/gemma3-swa6");
  const Model& m = *gm;
  ASSERT_TRUE(m.arch.post_norms);
  ASSERT_TRUE(m.arch.ffn_act == FfnAct::GeluTanh);
  ThreadPool pool(2);
  const CalibStats s = calibrate(m, small_domains(), small_opts(), pool);
  const int d = 2, L = int(m.hp.n_layer) - 1;
  const int64_t E = m.hp.n_embd, F = m.hp.n_ff;
  const RefitWindows w = refit_windows(calibration_tokens(s, {d}), 1024, 128);
  // The dense target at layer 0 is the FFN output before the norm, W a (no bias): sum y a^T = W G.
  const RefitMoments m0 = collect_refit_moments(m, m.w.layers, 0, w, RefitTarget::Ffn, pool);
  const MatR want = MapF(m.w.layers[0].ffn_down.f32(), E, F).cast<double>() * MapF(m0.gram.data(), F, F).cast<double>();  // [E, F]
  EXPECT_LT((MapF(m0.out_cross.data(), E, F).cast<double>() - want).norm(), 1e-4 * want.norm());
  MoeBuildOptions o = lsq_options(pool);
  const MoeParts plain = build_moe(m, s, o);
  o.build.sequential = true;
  o.build.refit_rows = RefitRows::GateUp;
  const MoeParts seq = build_moe(m, s, o);
  // The runner's moments equal the full passes' at every layer, with the expert's layers below.
  SequentialRefit runner(m, w, RefitTarget::Residual, pool);
  std::vector<LayerWeights> layers = m.w.layers;
  for (int il = 0; il <= L; ++il) {
    const RefitMoments got = runner.moments(layers), ref = collect_refit_moments(m, layers, il, w, RefitTarget::Residual, pool);
    const auto gx = MapF(got.out_cross.data(), E, F), rx = MapF(ref.out_cross.data(), E, F);
    EXPECT_LE((gx - rx).norm(), 1e-5 * rx.norm()) << "layer " << il;
    layers[size_t(il)] = plain.experts[d].layers[size_t(il)];
    runner.advance(layers);
  }
  // The stream after the last layer, against the dense one on the same tokens.
  const MatR dense = activations(m, nullptr, w, L, "block_out");  // [n, E]
  auto drift = [&](const Expert& e) { return (activations(m, &e.layers, w, L, "block_out") - dense).squaredNorm(); };
  const double e_plain = drift(plain.experts[d]), e_seq = drift(seq.experts[d]);
  EXPECT_LT(e_seq, 0.9 * e_plain) << e_seq << " vs " << e_plain;
}

TEST(Experts, MaskedRefitWindowsCountOnlyTheMaskedTokens) {
  using MatR = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using MapF = Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;
  const Model& m = shared_model();
  const CalibStats& s = shared_stats(m);
  ThreadPool pool(2);
  const int d = 0;
  const std::span<const int32_t> stream = calibration_tokens(s, {d}).at(0);
  std::vector<int> sub(s.domains[d].clusters.size());
  for (size_t c = 0; c < sub.size(); ++c) sub[c] = int(c % 3 == 0);
  const std::vector<uint8_t> mask = subdomain_token_mask(s, d, sub, 1);
  const int64_t counted = std::count(mask.begin(), mask.end(), uint8_t(1));
  ASSERT_GT(counted, 0);
  // With the budget above everything: every window holding a counted token, its mask aligned.
  RefitWindows all = masked_refit_windows(stream, mask, int64_t(stream.size()), 64);
  EXPECT_EQ(all.tokens(), counted);
  ASSERT_EQ(all.masks.size(), all.windows.size());
  for (size_t i = 0; i < all.windows.size(); ++i) {
    const int64_t start = all.windows[i].data() - stream.data();
    EXPECT_EQ(start % 64, 0);
    for (size_t t = 0; t < all.windows[i].size(); ++t) ASSERT_EQ(all.masks[i][t], mask[size_t(start) + t]);
    EXPECT_EQ(all.masks[i].back(), 1);  // nothing runs after the last counted token
  }
  // A budget of a quarter counts about a quarter, from windows spread over the whole stream.
  RefitWindows part = masked_refit_windows(stream, mask, counted / 4, 64);
  EXPECT_NEAR(double(part.tokens()), double(counted) / 4, 64.0 + 0.1 * double(counted));
  EXPECT_GT(part.windows.back().data() - stream.data(), int64_t(stream.size()) / 2);
  // The moments sum the counted tokens' rows only, each run in its window's full context.
  RefitMoments mm = collect_refit_moments(m, m.w.layers, 1, part, RefitTarget::Ffn, pool);
  EXPECT_EQ(mm.tokens, part.tokens());
  const MatR a = activations(m, nullptr, part, 1);  // [window tokens, n_ff]
  std::vector<uint8_t> flat;
  for (const auto& k : part.masks) flat.insert(flat.end(), k.begin(), k.end());
  ASSERT_EQ(int64_t(flat.size()), a.rows());
  MatR want = MatR::Zero(a.cols(), a.cols());  // [n_ff, n_ff]
  for (int64_t r = 0; r < a.rows(); ++r)
    if (flat[size_t(r)]) want.noalias() += a.row(r).transpose() * a.row(r);
  const MatR got = MapF(mm.gram.data(), a.cols(), a.cols()).cast<double>();
  EXPECT_LT((got - want).norm(), 1e-4 * want.norm());
  std::vector<uint8_t> none(stream.size(), 0);
  EXPECT_THROW(masked_refit_windows(stream, none, 1000), Error);
  EXPECT_THROW(masked_refit_windows(stream, std::vector<uint8_t>(3, 1), 1000), Error);  // not the stream's size
}

TEST(Experts, NeuronSelectionNames) {
  EXPECT_TRUE(parse_neuron_select("auto", Compensation::LeastSquares));
  EXPECT_FALSE(parse_neuron_select("auto", Compensation::Mean));
  EXPECT_TRUE(parse_neuron_select("obs", Compensation::LeastSquares));
  EXPECT_FALSE(parse_neuron_select("score", Compensation::LeastSquares));
  EXPECT_THROW(parse_neuron_select("obs", Compensation::None), Error);
  EXPECT_THROW(parse_neuron_select("best", Compensation::LeastSquares), Error);
}

TEST(Experts, SubdomainMaskMarksTheSamplesOfItsClusters) {
  const Model& m = shared_model();
  const CalibStats& s = shared_stats(m);
  const int d = 2;
  const DomainStats& ds = s.domains[d];
  std::vector<int> sub(ds.clusters.size());
  for (size_t c = 0; c < sub.size(); ++c) sub[c] = int(c % 2);  // even clusters -> 0, odd -> 1
  std::vector<int> covered(ds.tokens.size(), 0);
  for (int sd : {0, 1}) {
    const std::vector<uint8_t> mask = subdomain_token_mask(s, d, sub, sd);
    ASSERT_EQ(mask.size(), ds.tokens.size());
    // Whole samples: every token of sample i is marked exactly when its cluster maps to sd.
    for (size_t t = 0; t < mask.size(); ++t) {
      const int64_t i = int64_t(t) / s.sample_tokens;
      ASSERT_EQ(mask[t], sub[size_t(ds.sample_cluster[size_t(i)])] == sd ? 1 : 0) << "token " << t;
      covered[t] += mask[t];
    }
  }
  for (int c : covered) ASSERT_EQ(c, 1);  // the two sub-domains split the stream
  EXPECT_THROW(subdomain_token_mask(s, d, sub, 2), Error);  // no sample there
}

TEST(Experts, TopKAndDensityChecks) {
  std::vector<double> scores = {0.1, 0.9, 0.5, 0.7, 0.2};
  EXPECT_EQ(top_k_neurons(scores, 2), (std::vector<int32_t>{1, 3}));
  EXPECT_EQ(top_k_neurons(scores, 3, {4}), (std::vector<int32_t>{1, 3, 4}));
  BuildOptions b;
  for (double bad : {0.0, -0.5, 1.5, std::nan("")}) {
    b.density = bad;
    EXPECT_THROW(check_build_options(b), Error) << bad;
  }
}

TEST(Experts, DowpKeepsTheTopScoresOfEachRow) {
  const Model& m = shared_model();
  const CalibStats& s = shared_stats(m);
  MoeBuildOptions o;
  o.build.mode = "dowp";
  o.build.density = 0.25;
  o.build.dowp_scale = DowpScale::None;  // masks only, survivors unchanged
  MoeParts p = build_moe(m, s, o);
  const TensorView& dense = m.w.layers[0].ffn_gate;      // [n_ff, n_embd]
  const TensorView& pure = p.experts[2].layers[0].ffn_gate;  // same shape, purified
  ASSERT_EQ(pure.shape, dense.shape);
  std::vector<float> x_sq = s.domains[2].pooled_layer(0).ffn_in_sq;
  const int64_t E = m.hp.n_embd, keep = std::llround(0.25 * double(E));
  for (int64_t r = 0; r < 8; ++r) {
    const float* w = dense.f32() + r * E;
    const float* q = pure.f32() + r * E;
    int64_t nonzero = 0;
    float min_kept = INFINITY, max_dropped = 0;
    for (int64_t j = 0; j < E; ++j) {
      float score = std::fabs(w[j]) * std::sqrt(x_sq[j]);
      if (q[j] != 0.0f) {
        ++nonzero;
        EXPECT_EQ(q[j], w[j]);  // no rescaling by default
        min_kept = std::min(min_kept, score);
      } else {
        max_dropped = std::max(max_dropped, score);
      }
    }
    EXPECT_EQ(nonzero, keep);
    EXPECT_GE(min_kept, max_dropped);
  }
}

TEST(Router, LearnsSeparableDomainsAndFallsBackWhenUnsure) {
  const Model& m = shared_model();
  const CalibStats& s = shared_stats(m);
  std::vector<std::vector<int>> micro;
  Router r = train_router(s, 2, {}, &micro);
  int correct = 0, total = 0;
  for (size_t d = 0; d < s.domains.size(); ++d)
    for (int64_t i = 0; i < s.domains[d].n_samples(); ++i, ++total)
      correct += r.route(&s.domains[d].embeddings[i * s.dim]).domain == int(d);
  EXPECT_GE(double(correct) / total, 0.9);  // training accuracy on 32-token samples
  r.threshold = 1.01f;
  EXPECT_TRUE(r.route(&s.domains[0].embeddings[0]).dense);
  EXPECT_THROW(train_router(s, 5, {}, &micro), Error);  // 4 micro-clusters cannot make 5 sub-domains
}

TEST(MoeFile, RoundTripsAndRejectsCorruption) {
  const Model& m = shared_model();
  const CalibStats& s = shared_stats(m);
  MoeBuildOptions o;
  o.build.density = 0.5;
  o.subdomains = 2;
  MoeParts p = build_moe(m, s, o);
  MoeInfo info;
  info.mode = "neurons";
  info.density = 0.5;
  info.source_fingerprint = s.model_fingerprint;
  std::string path = test::temp_dir() + "/x.moe";
  MoeModel::write(m, p.router, p.experts, info, path);
  ASSERT_TRUE(MoeModel::is_moe_file(path));
  auto moe = MoeModel::load(path);
  ASSERT_EQ(moe->experts().size(), 8u);
  EXPECT_EQ(moe->experts()[5].name, "prose/1");
  std::vector<int32_t> ids = {5, 77, 1200, 9};
  std::vector<float> want = last_logits(m, &p.experts[5].layers, ids);
  std::vector<float> got = last_logits(moe->model(), &moe->experts()[5].layers, ids);
  for (size_t v = 0; v < want.size(); ++v) ASSERT_NEAR(got[v], want[v], 1e-5f * (1 + std::fabs(want[v])));
  ThreadPool pool(2);
  Routing r = moe->force("math", ids, pool);
  EXPECT_EQ(r.domain, "math");
  EXPECT_THROW(moe->force("cooking", ids, pool), Error);
  EXPECT_EQ(moe->force("dense", ids, pool).expert, -1);

  std::string bytes = test::read_file(path);
  test::write_file(path, bytes.substr(0, bytes.size() - 1000));
  EXPECT_THROW(MoeModel::load(path), Error);
  std::string flipped = bytes;
  flipped.replace(flipped.find("moeforge.moe.mode"), 17, "moeforge.moe.xxxx");
  test::write_file(path, flipped);
  EXPECT_THROW(MoeModel::load(path), Error);
}

}  // namespace
}  // namespace mf
