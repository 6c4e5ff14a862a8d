// Pins the bytes of the experts build_expert makes: for option combinations that between them
// take every branch of expert construction (selection, compensation, widths, sequential and
// row re-fits, layout, dowp; f32 and Q8_0 weights), the sha256 of each expert's buffers, of
// each layer's FFN views (dtype, shape, bytes) and of its neuron lists must equal
// tests/golden/data/moe/expert_bytes.json. A refactor of expert construction must leave them
// unchanged; a change meant to alter experts regenerates the file, saying why in its commit:
//   MOEFORGE_WRITE_GOLDEN=1 build/bin/golden_tests --gtest_filter='ExpertBytesGolden.*'
// (run from the repository root). The hashes are of float computations, so they hold for one
// compiler and the project's fixed flags (-mavx2 -mfma, no -march=native).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "calib/calibrate.h"
#include "moe/expert_builder.h"
#include "moe/moe_builder.h"
#include "ops/ops.h"
#include "test_util.h"

namespace mf {
namespace {

const char* kGolden = "tests/golden/data/moe/expert_bytes.json";

// Two domains of 512 calibration tokens (a fraction of a second). The sums, the sequential
// re-fit's forward passes and the row re-fit's token chunks were checked to give the same
// bytes on 1 to 4 threads, so the hashes do not depend on the machine's core count.
const CalibStats& golden_stats(const Model& m) {
  static const CalibStats s = [&] {
    CalibOptions o;
    o.tokens_per_domain = 512;
    o.sample_tokens = 32;
    o.micro_clusters = 2;
    o.gram = GramMode::On;
    ThreadPool pool(1);
    return calibrate(m, {{"code", {"tests/data/moe/code.txt"}}, {"math", {"tests/data/moe/math.txt"}}}, o, pool);
  }();
  return s;
}

const Model& f32_model() {
  static std::unique_ptr<Model> m = load_model("models/default");
  return *m;
}

// The default model with its FFN matrices quantised to Q8_0 (compact rows then stay whole
// blocks: widths round up to 32 and re-fitted rows are quantised again).
const Model& q8_model() {
  static std::unique_ptr<Model> m = [] {
    std::unique_ptr<Model> q = load_model("models/default");
    for (LayerWeights& l : q->w.layers)
      for (TensorView* t : {&l.ffn_gate, &l.ffn_up, &l.ffn_down}) {
        const int64_t rows = t->rows(), cols = t->cols();
        auto bytes = std::make_shared<std::vector<uint8_t>>(size_t(rows) * row_bytes(DType::Q8_0, cols));
        for (int64_t r = 0; r < rows; ++r)
          ops::quantize_row(DType::Q8_0, t->f32() + r * cols, bytes->data() + r * row_bytes(DType::Q8_0, cols), cols);
        *t = make_view(DType::Q8_0, {rows, cols}, bytes->data());
        q->storage.push_back(bytes);
      }
    return q;
  }();
  return *m;
}

// Which experts a case builds: the code domain's (most cases: the branches are per layer, not
// per domain), both domains', or the code domain's cluster-0 sub-domain (its own statistics,
// masked sequential windows).
enum class Experts { Code, Both, Subdomain };

struct Case {
  std::string name;
  bool q8 = false;
  std::function<void(BuildOptions&)> set;
  Experts experts = Experts::Code;
};

std::vector<Case> cases() {
  using B = BuildOptions;
  auto lsq = [](B& o) { o.compensation = Compensation::LeastSquares; };
  auto seq = [lsq](B& o) {
    lsq(o);
    o.sequential = true;
    o.sequential_tokens = 256;
    o.row_refit.max_iterations = 8;
  };
  return {
      {"neurons_none", false, [](B& o) { o.compensation = Compensation::None; }},
      {"neurons_mean_d03", false, [](B& o) { o.density = 0.3; }, Experts::Both},
      {"neurons_mean_shared", false, [](B& o) { o.shared_fraction = 0.25; }},
      {"neurons_lsq", false, lsq, Experts::Both},
      {"neurons_lsq_obs", false, [lsq](B& o) { lsq(o), o.obs_select = true; }},
      {"neurons_lsq_widths", false, [lsq](B& o) { lsq(o), o.widths = LayerWidths::ByError; }},
      {"neurons_lsq_obs_widths_shared", false,
       [lsq](B& o) { lsq(o), o.obs_select = true, o.widths = LayerWidths::ByError, o.shared_fraction = 0.25; }},
      {"neurons_lsq_damp", false, [lsq](B& o) { lsq(o), o.refit_damp = 0.05, o.density = 0.25; }},
      {"neurons_magnitude", false, [](B& o) { o.score = NeuronScore::Magnitude; }},
      {"neurons_random", false, [](B& o) { o.score = NeuronScore::Random, o.seed = 7; }},
      {"seq_down_ffn", false, [seq](B& o) { seq(o), o.refit_target = RefitTarget::Ffn; }},
      {"seq_down_residual_obs", false, [seq](B& o) { seq(o), o.obs_select = true; }},
      {"seq_down_widths_shared", false,
       [seq](B& o) { seq(o), o.widths = LayerWidths::ByError, o.shared_fraction = 0.25, o.obs_select = true; }},
      {"seq_up", false, [seq](B& o) { seq(o), o.refit_rows = RefitRows::Up; }},
      {"seq_gateup_2rounds", false, [seq](B& o) { seq(o), o.refit_rows = RefitRows::GateUp, o.refit_rounds = 2; }},
      {"seq_down_subdomain", false, seq, Experts::Subdomain},
      {"seq_gateup_subdomain", false, [seq](B& o) { seq(o), o.refit_rows = RefitRows::GateUp; }, Experts::Subdomain},
      {"dowp_none", false, [](B& o) { o.mode = "dowp", o.density = 0.25, o.dowp_scale = DowpScale::None; }},
      {"dowp_energy", false, [](B& o) { o.mode = "dowp"; }, Experts::Both},
      {"q8_neurons_mean_d03", true, [](B& o) { o.density = 0.3; }},
      {"q8_neurons_magnitude", true, [](B& o) { o.score = NeuronScore::Magnitude; }},
      {"q8_neurons_lsq_obs_widths", true, [lsq](B& o) { lsq(o), o.obs_select = true, o.widths = LayerWidths::ByError; }},
      {"q8_seq_gateup", true, [seq](B& o) { seq(o), o.refit_rows = RefitRows::GateUp; }},
      {"q8_dowp_energy", true, [](B& o) { o.mode = "dowp"; }},
  };
}

std::string sha(const void* p, size_t n) { return test::sha256_hex(static_cast<const uint8_t*>(p), n); }

// One layer's FFN as a session runs it: each view's dtype, shape and bytes (absent: "-").
std::string layer_hash(const LayerWeights& l) {
  std::string acc;
  for (const TensorView* t : {&l.ffn_gate, &l.ffn_up, &l.ffn_down, &l.ffn_down_b}) {
    if (!t->data) {
      acc += "-;";
      continue;
    }
    acc += std::string(dtype_name(t->dtype)) + t->shape_str() + sha(t->data, t->nbytes()) + ";";
  }
  return sha(acc.data(), acc.size());
}

nlohmann::json expert_json(const Expert& e) {
  std::string buffers;  // each buffer's size and hash, in order
  for (const std::vector<uint8_t>& b : e.buffers) buffers += std::to_string(b.size()) + ":" + sha(b.data(), b.size()) + ";";
  std::string neurons;
  std::vector<int64_t> widths;
  for (const std::vector<int32_t>& n : e.neurons) {
    neurons += std::to_string(n.size()) + ":" + sha(n.data(), n.size() * sizeof(int32_t)) + ";";
    widths.push_back(int64_t(n.size()));
  }
  nlohmann::json layers = nlohmann::json::array();
  for (const LayerWeights& l : e.layers) layers.push_back(layer_hash(l));
  return {{"name", e.name},
          {"n_buffers", e.buffers.size()},
          {"buffers", sha(buffers.data(), buffers.size())},
          {"widths", widths},
          {"neurons", sha(neurons.data(), neurons.size())},
          {"layers", layers}};
}

// The experts of one case, each built as build_moe builds it.
nlohmann::json build_case(const Case& c) {
  const Model& m = c.q8 ? q8_model() : f32_model();
  const CalibStats& s = golden_stats(f32_model());  // the same sums for both: only the weights differ
  BuildOptions b;
  c.set(b);
  ThreadPool pool(2);
  const std::vector<LayerStats> pooled = pooled_stats(s);
  nlohmann::json out = nlohmann::json::array();
  for (int d = 0; d < int(s.domains.size()); ++d) {
    if (c.experts != Experts::Both && d != 0) continue;
    const DomainStats& ds = s.domains[size_t(d)];
    std::vector<LayerStats> domain_layers;  // [n_layer]
    for (int64_t l = 0; l < s.n_layer; ++l) domain_layers.push_back(ds.pooled_layer(int(l)));
    ExpertSpec spec;
    spec.name = ds.name + "/0";
    spec.domain = d;
    spec.gram = &ds.act_gram;
    spec.gram_stats = domain_layers;
    if (c.experts == Experts::Subdomain) {
      std::vector<int> sub(ds.clusters.size(), 1);
      sub[0] = 0;
      spec.stats = ds.clusters[0].layers;
      spec.token_streams = calibration_tokens(s, {d});
      spec.token_mask = subdomain_token_mask(s, d, sub, 0);
    } else {
      spec.stats = domain_layers;
      spec.token_streams = calibration_tokens(s, {d});
    }
    spec.pool = &pool;
    out.push_back(expert_json(build_expert(m, spec, b, &pooled)));
  }
  return out;
}

TEST(ExpertBytesGolden, EveryBranchBuildsTheCommittedBytes) {
  nlohmann::json got = nlohmann::json::object();
  for (const Case& c : cases()) got[c.name] = build_case(c);
  if (const char* w = std::getenv("MOEFORGE_WRITE_GOLDEN"); w && std::string(w) == "1") {
    std::filesystem::create_directories(std::filesystem::path(kGolden).parent_path());
    test::write_file(kGolden, nlohmann::json{{"version", 1}, {"cases", got}}.dump(1) + "\n");
    GTEST_SKIP() << "wrote " << kGolden;
  }
  const nlohmann::json want = nlohmann::json::parse(test::read_file(kGolden));
  ASSERT_EQ(want.at("version"), 1);
  const nlohmann::json& wc = want.at("cases");
  for (const Case& c : cases()) {
    ASSERT_TRUE(wc.contains(c.name)) << "no golden for case " << c.name << " (regenerate: see the top of this file)";
    const nlohmann::json &g = got[c.name], &w = wc[c.name];
    ASSERT_EQ(g.size(), w.size()) << c.name;
    for (size_t i = 0; i < g.size(); ++i)
      for (const char* key : {"name", "n_buffers", "widths", "neurons", "layers", "buffers"})
        EXPECT_EQ(g[i][key], w[i][key]) << c.name << " expert " << i << ": " << key;
  }
  EXPECT_EQ(wc.size(), got.size()) << "the golden file has cases this test no longer builds";
}

}  // namespace
}  // namespace mf
