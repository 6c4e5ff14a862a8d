// LoRA adapters against PEFT (tests/golden/data/lora, made by scripts/make_lora_goldens.sh):
// - PEFT adapters (all maps, rsLoRA with rank and alpha patterns, Qwen2 with biases, Gemma 3)
//   on their Hugging Face base give PEFT's logits;
// - llama.cpp's GGUF conversion of an adapter gives them too, on the Hugging Face base and on a
//   GGUF base (whose q/k rows are interleaved, so the adapter's B rows are permuted);
// - the PEFT directory moeforge writes from that GGUF adapter is the one PEFT was checked on
//   (same bytes), and PEFT's logits on it equal moeforge's;
// - llama.cpp runs the GGUF LoRA moeforge writes with moeforge's greedy text.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "adapters/lora_io.h"
#include "adapters/lora_library.h"
#include "model/gguf_export.h"
#include "model/session.h"
#include "ops/ops.h"
#include "test_util.h"

namespace mf {
namespace {

using json = nlohmann::json;
const std::string kDir = "tests/golden/data/lora";

json read_json(const std::string& path) { return json::parse(test::read_file(path)); }

// Logits of base + adapter on the golden's probe ids, compared with PEFT's (f32 throughout).
void expect_peft_logits(const Model& m, const std::string& adapter, const json& golden, double tol = 1e-4) {
  auto lib = std::make_shared<LoraLibrary>(load_lora_library({adapter}, m));
  RoutedLora lora(lib, make_lora_router(*lib, lib->adapters[0].name, 1));
  const std::vector<int32_t> ids = golden["probe_ids"].get<std::vector<int32_t>>();
  ThreadPool pool(2);
  Session s(m, int(ids.size()), pool);
  s.set_numerics(Numerics{false, false});
  s.set_adapter(0, &lora);
  const float* logits = s.eval(ids, /*all_logits=*/true);
  const int64_t V = m.hp.n_vocab;
  const auto& first = golden["logits_first_ids"];
  for (size_t t = 0; t < ids.size(); ++t)
    for (size_t v = 0; v < first[t].size(); ++v) {
      const double want = first[t][v].get<double>(), got = logits[int64_t(t) * V + int64_t(v)];
      ASSERT_NEAR(got, want, tol + tol * std::abs(want)) << adapter << " position " << t << " token " << v;
    }
  const auto& last = golden["logits_last_row"];
  for (size_t v = 0; v < last.size(); ++v) {
    const double want = last[v].get<double>(), got = logits[int64_t(ids.size() - 1) * V + int64_t(v)];
    ASSERT_NEAR(got, want, tol + tol * std::abs(want)) << adapter << " last row, token " << v;
  }
}

class PeftGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(PeftGolden, BasePlusAdapterGivesPeftLogits) {
  const std::string dir = kDir + "/" + GetParam();
  const json golden = read_json(dir + "/golden.json");
  auto m = load_model(golden["base"].get<std::string>());
  expect_peft_logits(*m, dir, golden);
  // The adapter matters: the base alone is far from PEFT's logits.
  const std::vector<int32_t> ids = golden["probe_ids"].get<std::vector<int32_t>>();
  ThreadPool pool(1);
  Session s(*m, int(ids.size()), pool);
  const float* base = s.eval(ids, /*all_logits=*/false);
  double moved = 0;
  for (size_t v = 0; v < golden["logits_last_row"].size(); ++v)
    moved = std::max(moved, std::abs(golden["logits_last_row"][v].get<double>() - base[v]));
  EXPECT_GT(moved, 0.05);
}

INSTANTIATE_TEST_SUITE_P(Adapters, PeftGolden,
                         ::testing::Values("llama-gqa4-untied-r4", "llama-gqa4-untied-rslora", "qwen2-bias-gqa3-r4",
                                           "gemma3-swa6-r8", "trained-default-r4"),
                         [](const auto& info) {
                           std::string s = info.param;
                           for (char& c : s)
                             if (c == '-') c = '_';
                           return s;
                         });

class GgufLoraGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(GgufLoraGolden, LlamaCppAdapterGivesPeftLogitsOnHfAndGgufBases) {
  const std::string name = GetParam();
  const json golden = read_json(kDir + "/" + name + "/golden.json");
  const std::string gguf = kDir + "/" + name + ".gguf";
  auto hf = load_model(golden["base"].get<std::string>());
  expect_peft_logits(*hf, gguf, golden);
  const std::string base_gguf = test::temp_dir() + "/base.gguf";
  export_gguf(*hf, base_gguf, DType::F32);
  auto g = load_model(base_gguf);
  expect_peft_logits(*g, gguf, golden);
  expect_peft_logits(*g, kDir + "/" + name, golden);  // the PEFT adapter on the GGUF base
}

INSTANTIATE_TEST_SUITE_P(Adapters, GgufLoraGolden, ::testing::Values("llama-gqa4-untied-r4", "gemma3-swa6-r8"),
                         [](const auto& info) {
                           std::string s = info.param;
                           for (char& c : s)
                             if (c == '-') c = '_';
                           return s;
                         });

TEST(LoraRoundTrip, PeftLoadsTheAdapterMoeforgeWritesWithTheSameLogits) {
  const json rec = read_json(kDir + "/roundtrip/llama-gqa4-untied-r4.json");
  auto m = load_model(rec["base"].get<std::string>());
  const LoraAdapter a = load_lora(kDir + "/llama-gqa4-untied-r4.gguf", *m);
  const std::string out = test::temp_dir() + "/written";
  write_peft_lora(out, a, m->hp.head_dim);
  const std::string bytes = test::read_file(out + "/adapter_model.safetensors");
  EXPECT_EQ(test::sha256_hex(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()),
            rec["written_sha256"].get<std::string>())
      << "the writer changed since PEFT checked its output: rerun scripts/make_lora_goldens.sh";
  expect_peft_logits(*m, out, rec);
}

// llama.cpp (llama-completion --lora) on the GGUF LoRA moeforge writes gives the greedy text
// moeforge gives (scripts/check_lora_llamacpp.sh recorded it with both files' sha256).
TEST(LoraRoundTrip, LlamaCppAppliesTheGgufLoraMoeforgeWritesAsMoeforgeDoes) {
  const json rec = read_json(kDir + "/llamacpp_greedy.json");
  auto hf = load_model("tests/golden/data/models/llama-gqa4-untied");
  const std::string dir = test::temp_dir();
  export_gguf(*hf, dir + "/base.gguf", DType::F32);
  const std::string base_bytes = test::read_file(dir + "/base.gguf");
  ASSERT_EQ(test::sha256_hex(reinterpret_cast<const uint8_t*>(base_bytes.data()), base_bytes.size()),
            rec["base_sha256"].get<std::string>())
      << "the GGUF export changed since llama.cpp ran: rerun scripts/check_lora_llamacpp.sh";
  auto base = load_model(dir + "/base.gguf");
  const Tokenizer& tok = base->require_tokenizer();
  for (const json& r : rec["records"]) {
    const std::string name = r["adapter"];
    const LoraAdapter a = load_lora(kDir + "/" + name, *base);
    write_gguf_lora(dir + "/" + name + ".gguf", a, base->hp.head_dim);
    const std::string bytes = test::read_file(dir + "/" + name + ".gguf");
    ASSERT_EQ(test::sha256_hex(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()), r["lora_sha256"].get<std::string>())
        << name << ": the GGUF LoRA writer changed since llama.cpp ran";
    // moeforge's greedy text with the GGUF adapter it wrote (llama.cpp numerics, as generate).
    auto lib = std::make_shared<LoraLibrary>(load_lora_library({dir + "/" + name + ".gguf"}, *base));
    RoutedLora lora(lib, make_lora_router(*lib, lib->adapters[0].name, 1));
    ThreadPool pool(1);
    std::vector<int32_t> prompt = tok.encode(rec["prompt"].get<std::string>(), true);
    const int n = rec["n_predict"].get<int>();
    Session s(*base, int(prompt.size()) + n, pool);
    s.set_adapter(0, &lora);
    const float* logits = s.eval(prompt, false);
    std::string text;
    for (int i = 0; i < n; ++i) {
      int32_t t = int32_t(ops::argmax(logits, base->hp.n_vocab));
      if (t == tok.spec().eos_id) break;
      text += tok.token_to_piece(t);
      if (i + 1 < n) logits = s.eval({&t, 1}, false);
    }
    static const char* hex = "0123456789abcdef";
    std::string got;
    for (unsigned char c : text) got += std::string{hex[c >> 4], hex[c & 15]};
    EXPECT_EQ(got, r["text_hex"].get<std::string>()) << name << ": moeforge wrote '" << text << "'";
  }
}

}  // namespace
}  // namespace mf
