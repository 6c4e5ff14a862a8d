// Token-routed MoE fixtures from llama.cpp's own converter (scripts/make_moe_llamacpp_goldens.sh):
// the engine reads its merged-expert GGUF files, matches transformers' perplexity from them,
// and continues a prompt greedily as llama.cpp does.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "model/gguf_export.h"
#include "model/perplexity.h"
#include "model/sampler.h"
#include "model/session.h"
#include "test_util.h"

namespace mf {
namespace {

using json = nlohmann::json;

json cases() { return json::parse(test::read_file("tests/golden/data/llamacpp/moe_greedy.json")); }

std::string hex(const std::string& bytes) {
  static const char* d = "0123456789abcdef";
  std::string h;
  for (unsigned char c : bytes) h += d[c >> 4], h += d[c & 15];
  return h;
}

// Greedy continuation bytes with the engine's default numerics (llama.cpp's CPU arithmetic).
std::string greedy_bytes(const Model& m, const std::string& prompt, int n) {
  ThreadPool pool(2);
  Session s(m, 0, pool);
  const Tokenizer& tok = m.require_tokenizer();
  auto ids = tok.encode(prompt, true);
  const float* logits = s.eval(ids, false);
  std::string out;
  for (int i = 0; i < n; ++i) {
    int32_t next = argmax(logits, m.hp.n_vocab);
    if (next == tok.spec().eos_id) break;
    out += tok.token_to_piece(next);
    logits = s.eval({&next, 1}, false);
  }
  while (!out.empty() && out.back() == '\n') out.pop_back();  // the golden drops trailing newlines
  return out;
}

TEST(MoeLlamaCppGolden, ReadsItsGgufAndMatchesTransformersPerplexity) {
  const json g = cases();
  ASSERT_EQ(g["cases"].size(), 6u);  // three architectures, f16 and q8_0
  for (const json& c : g["cases"]) {
    auto m = load_model(c["file"].get<std::string>());
    ASSERT_GT(m->hp.n_expert, 0) << c["file"];
    json golden = json::parse(test::read_file("tests/golden/data/models/" + c["fixture"].get<std::string>() + "/golden.json"));
    std::string text = test::shared_dir() + "/models/tiny-llama-a/gsm8k_4.txt";
    auto tokens = m->require_tokenizer().encode(test::read_file(text), false);
    ThreadPool pool(2);
    PerplexityProtocol f32;
    f32.f32 = true;
    double got = compute_perplexity(*m, tokens, int64_t(tokens.size()), pool, {}, {}, f32).ppl;
    double want = golden["ppl"]["gsm8k_4.txt"]["ppl"].get<double>();
    // The fixtures are stored in f16, so llama.cpp's f16 file holds the same weights exactly.
    double tol = c["type"] == "f16" ? 1e-4 : 0.005;
    EXPECT_LT(std::abs(got - want) / want, tol) << c["file"] << ": ppl " << got << ", transformers " << want;
  }
}

// f16: the whole continuation equals llama.cpp's. q8_0: both quantise activations to q8_0,
// but these random-weight models have next-token margins of a few hundredths, and the dense
// fixtures' q8_0 files part from llama.cpp too after some tokens (summation order); the
// q8_0 cases must agree on at least the first half of llama.cpp's bytes.
TEST(MoeLlamaCppGolden, GreedyTextMatchesLlamaCpp) {
  json g = cases();
  for (const json& c : g["cases"]) {
    auto m = load_model(c["file"].get<std::string>());
    std::string ours = hex(greedy_bytes(*m, g["prompt"].get<std::string>(), g["n"].get<int>()));
    std::string theirs = c["continuation_hex"].get<std::string>();
    if (c["type"] == "f16") {
      EXPECT_EQ(ours, theirs) << c["file"];
    } else {
      size_t common = 0;
      while (common < ours.size() && common < theirs.size() && ours[common] == theirs[common]) ++common;
      EXPECT_GE(common * 2, theirs.size()) << c["file"] << ": ours " << ours << ", llama.cpp " << theirs;
    }
  }
}

// DeepSeek (V1): dense first layer, routed experts scaled by 1.5, ungated shared experts.
// transformers has no class for it; llama.cpp's deepseek architecture is the reference.
TEST(MoeLlamaCppGolden, DeepSeekMatchesLlamaCppPerplexityAndText) {
  const std::string dir = "tests/golden/data/models/deepseek-gguf";
  const json g = json::parse(test::read_file(dir + "/golden.json"));
  auto m = load_model(g["file"].get<std::string>());
  ASSERT_EQ(m->arch.name, "deepseek");
  EXPECT_FALSE(m->w.layers[0].is_moe());
  EXPECT_TRUE(m->w.layers[1].is_moe());
  EXPECT_FLOAT_EQ(m->routing.weight_scale, 1.5f);
  EXPECT_EQ(m->hp.n_ff_shexp, 64);
  auto tokens = m->require_tokenizer().encode(test::read_file(test::shared_dir() + "/models/tiny-llama-a/gsm8k_4.txt"), false);
  ThreadPool pool(2);
  PerplexityProtocol llamacpp;  // llama-perplexity's: second halves of windows (no BOS: add_bos is off)
  llamacpp.second_half_only = true;
  const double got = compute_perplexity(*m, tokens, 128, pool, {}, {}, llamacpp).ppl;
  const double want = g["perplexity"]["llamacpp_ppl"].get<double>();
  EXPECT_LT(std::abs(got - want) / want, 1e-4) << "moeforge " << got << ", llama.cpp " << want;
  EXPECT_EQ(hex(greedy_bytes(*m, g["greedy"]["prompt"].get<std::string>(), g["greedy"]["n"].get<int>())),
            g["greedy"]["continuation_hex"].get<std::string>());
  // moeforge's own GGUF of it (shared expert count, weights scale, dense lead) keeps the logits.
  std::string out = test::temp_dir() + "/deepseek.gguf";
  export_gguf(*m, out, DType::F32);
  auto r = load_model(out);
  Session a(*m, 16, pool), b(*r, 16, pool);
  std::vector<int32_t> ids = {5, 17, 300, 2};
  const float* pa = a.eval(ids, false);
  const float* pb = b.eval(ids, false);
  for (int v = 0; v < m->hp.n_vocab; ++v) ASSERT_NEAR(pa[v], pb[v], 1e-3f) << v;
}

}  // namespace
}  // namespace mf
