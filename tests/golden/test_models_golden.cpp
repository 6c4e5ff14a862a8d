// The engine against transformers (fixtures and goldens from scripts/make_model_goldens.py)
// and against llama.cpp (stories260K greedy text from scripts/make_llamacpp_goldens.sh).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "model/gguf_export.h"
#include "model/perplexity.h"
#include "model/sampler.h"
#include "model/session.h"
#include "test_util.h"

namespace mf {
namespace {

using json = nlohmann::json;
const char* kFixtures = "tests/golden/data/models";

std::vector<int32_t> tokenize_file(const Model& m, const std::string& path) {
  return m.require_tokenizer().encode(test::read_file(path), /*add_special=*/false);
}

double ppl_of(const Model& m, const std::string& text_path) {
  ThreadPool pool(2);
  auto tokens = tokenize_file(m, text_path);
  PerplexityProtocol f32;
  f32.f32 = true;  // transformers computes in f32 throughout
  return compute_perplexity(m, tokens, int64_t(tokens.size()), pool, {}, {}, f32).ppl;
}

TEST(ModelGolden, TinyLlamaAMatchesTransformersPerplexity) {
  // Figures from ../shared/models/README.md (transformers, float32, one window).
  std::string dir = test::shared_dir() + "/models/tiny-llama-a";
  auto m = load_model(dir);
  for (auto [file, tokens, ppl] : {std::tuple{"gsm8k_4.txt", 738, 1326.0974627787368},
                                   std::tuple{"f1500.txt", 585, 1300.8470773741635}}) {
    auto ids = tokenize_file(*m, dir + "/" + file);
    EXPECT_EQ(int(ids.size()), tokens) << file;
    double got = ppl_of(*m, dir + "/" + file);
    EXPECT_LT(std::abs(got - ppl) / ppl, 1e-4) << file << ": got " << got << ", transformers " << ppl;
  }
}

class FixtureGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(FixtureGolden, PerplexityMatchesTransformers) {
  std::string dir = std::string(kFixtures) + "/" + GetParam();
  json golden = json::parse(test::read_file(dir + "/golden.json"));
  auto m = load_model(dir);
  for (auto& [file, ref] : golden["ppl"].items()) {
    std::string text = test::shared_dir() + "/models/tiny-llama-a/" + file;
    EXPECT_EQ(int64_t(tokenize_file(*m, text).size()), ref["tokens"].get<int64_t>());
    double want = ref["ppl"].get<double>(), got = ppl_of(*m, text);
    EXPECT_LT(std::abs(got - want) / want, 1e-4) << file << ": got " << got << ", transformers " << want;
  }
}

// Probe logits: every position, first 8 vocabulary entries.
void expect_probe_logits(const Model& m, const json& golden, double tol) {
  auto ids = golden["probe_ids"].get<std::vector<int32_t>>();
  ThreadPool pool(2);
  Session s(m, 64, pool);
  s.set_numerics(Numerics{false, false});  // transformers computes in f32 throughout
  const float* logits = s.eval(ids, true);  // [n, V]
  auto ref = golden["probe_logits_last8"];
  for (size_t t = 0; t < ids.size(); ++t)
    for (int v = 0; v < 8; ++v) {
      double want = ref[t][v].get<double>(), got = logits[t * m.hp.n_vocab + v];
      EXPECT_NEAR(got, want, tol + tol * std::abs(want)) << "position " << t << " token " << v;
    }
}

TEST_P(FixtureGolden, ProbeLogitsMatchTransformers) {
  std::string dir = std::string(kFixtures) + "/" + GetParam();
  expect_probe_logits(*load_model(dir), json::parse(test::read_file(dir + "/golden.json")), 1e-4);
}

// HF -> GGUF f32 must keep the function exactly (q/k rows are permuted for GGUF's RoPE
// pairing, llama3 scaling travels as rope_freqs), and lower precisions stay close.
TEST_P(FixtureGolden, ConvertedGgufKeepsLogits) {
  std::string dir = std::string(kFixtures) + "/" + GetParam();
  json golden = json::parse(test::read_file(dir + "/golden.json"));
  auto m = load_model(dir);
  std::string out = test::temp_dir() + "/m.gguf";
  export_gguf(*m, out, DType::F32);
  auto g = load_model(out);
  EXPECT_EQ(g->format, "gguf");
  expect_probe_logits(*g, golden, 1e-4);
  std::string text = test::shared_dir() + "/models/tiny-llama-a/gsm8k_4.txt";
  double ref_ppl = golden["ppl"]["gsm8k_4.txt"]["ppl"].get<double>();
  for (auto [type, tol] : {std::pair{DType::F16, 0.01}, std::pair{DType::Q8_0, 0.02}, std::pair{DType::Q4_0, 0.25}}) {
    export_gguf(*m, out, type);
    double got = ppl_of(*load_model(out), text);
    EXPECT_LT(std::abs(got - ref_ppl) / ref_ppl, tol) << dtype_name(type) << ": ppl " << got << " vs " << ref_ppl;
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, FixtureGolden,
                         ::testing::Values("llama-gqa4-untied", "llama-mha-tied-theta500k-llama3", "qwen2-bias-gqa3",
                                           "llama-vocab32k-sharded", "mistral-swa6", "gemma3-swa6", "mixtral-e8-top2",
                                           "qwen2moe-e8-top4-shared-dense", "qwen2moe-e4-top1", "olmoe-e8-top2"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n) if (!isalnum(c)) c = '_';
                           return n;
                         });

// Greedy continuation with moeforge's own loop (prompt with BOS, then argmax).
std::string greedy(const Model& m, const std::string& prompt, int n) {
  ThreadPool pool(2);
  Session s(m, 0, pool);
  const Tokenizer& tok = m.require_tokenizer();
  auto ids = tok.encode(prompt, true);
  const float* logits = s.eval(ids, false);
  std::string text;
  for (int i = 0; i < n; ++i) {
    int32_t next = argmax(logits, m.hp.n_vocab);
    if (next == tok.spec().eos_id) break;
    text += tok.token_to_piece(next);
    logits = s.eval({&next, 1}, false);
  }
  return text;
}

TEST(ModelGolden, Stories260KMatchesLlamaCppGreedyInEveryFormat) {
  json golden = json::parse(test::read_file("tests/golden/data/llamacpp/stories260K.json"));
  std::string dir = test::shared_dir() + "/models/stories260K";
  for (auto& c : golden["cases"]) {
    std::string prompt = c["prompt"], want = c["continuation"];
    int n = c["n"];
    for (std::string path : {dir + "/stories260K.gguf", dir + "/stories260K.bin", dir})
      EXPECT_EQ(greedy(*load_model(path), prompt, n), want) << path << " prompt '" << prompt << "'";
  }
}

}  // namespace
}  // namespace mf
