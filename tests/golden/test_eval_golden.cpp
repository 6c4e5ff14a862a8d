// moeforge eval against lm-evaluation-harness's rules as re-implemented on transformers
// (scripts/make_eval_goldens.py, float32): for every golden sample the context string our
// task readers and prompt layout build, the token split, and each choice's log-likelihood and
// greedy flag (f32 numerics, relative error below 1e-4; ARC-Easy, PIQA, MMLU as letters and
// as cloze); WikiText's rolling-window log-likelihoods and GSM8K's greedy generations
// (scripts/make_eval_rolling_gen_goldens.py); on the committed default model and on
// SmolLM2-135M-Instruct (skipped when it has not been pulled).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <map>

#include <nlohmann/json.hpp>

#include "eval/evaluator.h"
#include "eval/generate_until.h"
#include "eval/loglikelihood.h"
#include "eval/tasks.h"
#include "test_util.h"

namespace mf::eval {
namespace {

const std::string kData = "../shared/data/eval";

const McTask& task_named(const std::string& name) {
  static std::map<std::string, McTask> cache;
  auto it = cache.find(name);
  if (it != cache.end()) return it->second;
  const std::string cloze = "mmlu_continuation_";
  McTask t = name.starts_with(cloze) ? read_mmlu(kData + "/mmlu", {name.substr(cloze.size())}, MmluFormat::Continuation)
             : name.starts_with("mmlu_") ? read_mmlu(kData + "/mmlu", {name.substr(5)})
                                         : read_mc_jsonl(name, kData + "/mc/" + name + ".jsonl");
  return cache.emplace(name, std::move(t)).first->second;
}

// bos: compare with the golden's variant whose context starts with BOS (lm-eval >= 0.4.9.2
// encodes with the tokenizer's default, and the default model's tokenizer adds BOS).
void check_golden(const std::string& model_path, const std::string& golden, bool bos) {
  const auto g = nlohmann::json::parse(test::read_file(golden));
  auto model = load_model(model_path);
  const Tokenizer& tok = model->require_tokenizer();
  ASSERT_EQ(tok.spec().add_bos, bos) << "the tokenizer's BOS default changed; the golden variant no longer applies";
  ThreadPool pool(2);
  std::vector<LlRequest> requests;
  std::vector<const nlohmann::json*> samples;
  for (const auto& s : g["samples"]) {
    const McTask& task = task_named(s["task"]);
    const size_t doc = s["doc_index"];
    const std::string context = mc_context(task, doc, s["shots"]);
    ASSERT_EQ(context, s["context"].get<std::string>()) << s["task"] << " " << doc << " shots " << s["shots"];
    LlRequest r;
    for (size_t c = 0; c < task.docs[doc].choices.size(); ++c) {
      const EncodedPair p = encode_pair(tok, context, task.target_delimiter + task.docs[doc].choices[c]);
      ASSERT_EQ(task.target_delimiter + task.docs[doc].choices[c], s["choices"][c].get<std::string>());
      std::vector<int32_t> want_ctx = s["context_ids"];
      if (bos) want_ctx.insert(want_ctx.begin(), tok.spec().bos_id);
      ASSERT_EQ(p.context, want_ctx) << s["task"] << " " << doc;
      ASSERT_EQ(p.continuation, s["continuation_ids"][c].get<std::vector<int32_t>>()) << s["task"] << " " << doc << " choice " << c;
      r.context = p.context;
      r.continuations.push_back(p.continuation);
    }
    requests.push_back(std::move(r));
    samples.push_back(&s);
  }
  ScoreOptions so;
  so.n_ctx = g["header"]["max_length"];  // lm-eval keeps the last max_length tokens
  so.numerics = Numerics{false, false};  // f32, as transformers
  const auto got = score_loglikelihood(*model, pool, requests, so);
  int greedy_mismatch = 0;
  for (size_t i = 0; i < samples.size(); ++i) {
    const nlohmann::json& s = *samples[i];
    const nlohmann::json& want = bos ? s["bos_variant"] : s;
    for (size_t c = 0; c < got[i].loglikelihood.size(); ++c) {
      const double w = want["loglikelihoods"][c];
      EXPECT_NEAR(got[i].loglikelihood[c], w, 1e-4 * std::abs(w)) << s["task"] << " " << s["doc_index"] << " choice " << c;
      greedy_mismatch += bool(got[i].is_greedy[c]) != want["is_greedy"][c].get<bool>();
    }
    EXPECT_EQ(argmax_index(got[i].loglikelihood), want["pred_acc"].get<size_t>()) << s["task"] << " " << s["doc_index"];
  }
  EXPECT_EQ(greedy_mismatch, 0);
}

TEST(EvalGolden, DefaultModelMatchesTransformers) {
  check_golden("models/default", "tests/golden/data/eval/lm_eval_mc_default.json", /*bos=*/true);
}

TEST(EvalGolden, SmolLM2MatchesTransformers) {
  const std::string path = test::pulled_model_file("smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf");
  if (path.empty()) GTEST_SKIP() << "SmolLM2-135M-Instruct is not pulled (moeforge pull smollm2-135m-instruct)";
  check_golden(path, "tests/golden/data/eval/lm_eval_mc_smollm2-135m-instruct-q4_1.json", /*bos=*/false);
}

// WikiText scored in rolling windows and GSM8K generated greedily, against transformers on the
// same f32 weights (lm-eval's loglikelihood_rolling and generate_until).
void check_rolling_and_generation(const std::string& model_path, const std::string& golden) {
  const auto g = nlohmann::json::parse(test::read_file(golden));
  auto model = load_model(model_path);
  const Tokenizer& tok = model->require_tokenizer();
  ThreadPool pool(2);

  EvalOptions eo;
  eo.limit = int64_t(g["wikitext"].size());
  eo.n_ctx = g["header"]["wikitext_window"];
  eo.numerics = Numerics{false, false};
  const TaskResult wt = evaluate_wikitext(*model, pool, "wikitext", test::read_file(kData + "/wikitext2/test.txt"), eo, {});
  ASSERT_EQ(wt.records.size(), g["wikitext"].size());
  double ll = 0, words = 0;
  for (size_t a = 0; a < wt.records.size(); ++a) {
    const auto& want = g["wikitext"][a];
    EXPECT_EQ(wt.records[a]["bytes"], want["bytes"]) << "article " << a << ": another article split";
    const double w = want["loglikelihood"];
    EXPECT_NEAR(wt.records[a]["loglikelihood"].get<double>(), w, 1e-4 * std::abs(w)) << "article " << a;
    ll += w, words += want["words"].get<double>();
  }
  const double want_ppl = std::exp(-ll / words);
  EXPECT_NEAR(wt.metrics.at("word_perplexity").value, want_ppl, 1e-3 * want_ppl);

  const GenTask task = read_gsm8k(kData + "/gsm8k/test.jsonl", kData + "/gsm8k/train.jsonl");
  const auto prompts = nlohmann::json::parse(test::read_file("tests/golden/data/eval/gsm8k_prompts.json"))["prompts"];
  GenOptions go;
  go.until = task.until;
  go.max_tokens = g["header"]["gsm8k_max_gen_toks"];
  go.n_ctx = g["header"]["max_length"];
  go.numerics = Numerics{false, false};
  std::vector<GenRequest> requests;
  for (const auto& want : g["gsm8k"]) {
    const auto& p = prompts[want["doc_index"].get<size_t>()];
    requests.push_back(GenRequest{tok.encode(p["context"].get<std::string>(), /*add_special=*/true), {}});
    ASSERT_EQ(int64_t(requests.back().prompt.size()), want["prompt_tokens"].get<int64_t>());
  }
  const auto got = generate_until(*model, pool, requests, go);
  for (size_t i = 0; i < got.size(); ++i) {
    const auto& want = g["gsm8k"][i];
    // A top-2 gap this small could flip between two correct f32 engines.
    ASSERT_GT(want["min_top2_logit_gap"].get<double>(), 1e-3) << "regenerate the golden with other prompts";
    EXPECT_EQ(got[i].text, want["text"].get<std::string>()) << "doc " << want["doc_index"];
    EXPECT_EQ(got[i].stop_reason, want["stop_reason"].get<std::string>()) << "doc " << want["doc_index"];
    EXPECT_EQ(got[i].tokens, int64_t(want["generated_ids"].size())) << "doc " << want["doc_index"];
  }
}

TEST(EvalGolden, DefaultModelRollingAndGenerationMatchTransformers) {
  check_rolling_and_generation("models/default", "tests/golden/data/eval/lm_eval_rolling_gen_default.json");
}

TEST(EvalGolden, SmolLM2RollingAndGenerationMatchTransformers) {
  const std::string path = test::pulled_model_file("smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf");
  if (path.empty()) GTEST_SKIP() << "SmolLM2-135M-Instruct is not pulled (moeforge pull smollm2-135m-instruct)";
  check_rolling_and_generation(path, "tests/golden/data/eval/lm_eval_rolling_gen_smollm2-135m-instruct-q4_1.json");
}

// GSM8K: lm-eval's few-shot draws (random.Random(1234)), its prompt text and its answer filters.
TEST(EvalGolden, Gsm8kPromptsAndExtractionMatchLmEval) {
  const auto g = nlohmann::json::parse(test::read_file("tests/golden/data/eval/gsm8k_prompts.json"));
  const GenTask task = read_gsm8k(kData + "/gsm8k/test.jsonl", kData + "/gsm8k/train.jsonl");
  size_t n = 0;
  for (const auto& p : g["prompts"]) n = std::max(n, p["doc_index"].get<size_t>() + 1);
  const auto draws = lm_eval_fewshot_draws(task.fewshot_pool.size(), n, 5);
  for (const auto& p : g["prompts"]) {
    const size_t doc = p["doc_index"];
    EXPECT_EQ(draws[doc], p["fewshot_train_indices"].get<std::vector<size_t>>()) << doc;
    EXPECT_EQ(gen_context(task, doc, draws[doc]), p["context"].get<std::string>()) << doc;
    EXPECT_EQ(task.docs[doc].answer, p["gold_normalised"].get<std::string>()) << doc;
  }
  for (const auto& e : g["extraction_examples"]) {
    const auto want = [&](const char* key) { return e[key] == "[invalid]" ? std::string() : e[key].get<std::string>(); };
    EXPECT_EQ(gsm8k_strict_answer(e["response"]), want("strict_normalised")) << e["response"];
    EXPECT_EQ(gsm8k_flexible_answer(e["response"]), want("flexible_normalised")) << e["response"];
  }
}

}  // namespace
}  // namespace mf::eval
