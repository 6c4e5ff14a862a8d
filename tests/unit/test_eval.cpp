// The evaluation harness's parts: task readers and their errors, lm-eval's prompt layout and
// token split, rolling windows, metrics, GSM8K answer extraction; and the batched scorer and
// generator with shared-prefix KV reuse against a plain one-sequence-at-a-time reference.
#include <gtest/gtest.h>

#include <cmath>

#include "adapters/lora_library.h"
#include "core/error.h"
#include "eval/evaluator.h"
#include "eval/generate_until.h"
#include "eval/loglikelihood.h"
#include "eval/python_random.h"
#include "eval/tasks.h"
#include <filesystem>

#include "model/perplexity.h"
#include "model/sampler.h"
#include "model/session.h"
#include "test_util.h"

namespace mf::eval {
namespace {

const char* kModel = "models/default";

std::string write_temp(const std::string& name, const std::string& text) {
  const std::string path = test::temp_dir() + "/" + name;
  test::write_file(path, text);
  return path;
}

TEST(EvalTasks, McJsonlReadsQueryChoicesGold) {
  const std::string p = write_temp("t.jsonl",
                                   "{\"query\": \"Question: 2+2?\", \"choices\": [\"3\", \"4\"], \"gold\": 1}\n\n"
                                   "{\"query\": \"Question: sky?\", \"choices\": [\"blue\", \"green\", \"red\"], \"gold\": 0}\n");
  const McTask t = read_mc_jsonl("toy", p);
  ASSERT_EQ(t.docs.size(), 2u);
  EXPECT_EQ(t.docs[0].text, "Question: 2+2?\nAnswer:");
  EXPECT_EQ(t.docs[1].choices.size(), 3u);
  EXPECT_EQ(t.docs[0].gold, 1);
  EXPECT_EQ(mc_context(t, 0, 0), "Question: 2+2?\nAnswer:");
  // Shots from the task's own documents, never the document itself.
  EXPECT_EQ(mc_context(t, 0, 1), "Question: sky?\nAnswer: blue\n\nQuestion: 2+2?\nAnswer:");
  EXPECT_THROW(mc_context(t, 0, 2), Error);  // only one other document
}

TEST(EvalTasks, McJsonlBadInputNamesTheLine) {
  const auto err = [](const std::string& text) {
    try {
      read_mc_jsonl("bad", write_temp("b.jsonl", text));
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(err("{\"query\": \"q\", \"choices\": [\"a\", \"b\"]}\n").find(":1: missing field \"gold\""), std::string::npos);
  EXPECT_NE(err("{\"query\": \"q\", \"choices\": [\"a\", \"b\"], \"gold\": 0}\n{\"choices\": [\"a\", \"b\"], \"gold\": 0}\n")
                .find(":2: missing field \"query\""), std::string::npos);
  EXPECT_NE(err("{\"query\": \"q\", \"choices\": [\"a\", \"b\"], \"gold\": 2}\n").find("gold index 2 is out of range"),
            std::string::npos);
  EXPECT_NE(err("{\"query\": \"q\", \"choices\": [\"a\"], \"gold\": 0}\n").find("at least 2"), std::string::npos);
  EXPECT_NE(err("not json\n").find("not JSON"), std::string::npos);
  EXPECT_NE(err("\n\n").find("empty"), std::string::npos);  // blank lines only: read_text_file or no documents
}

TEST(EvalTasks, MmluCsvQuotedFieldsFewShotAndCategories) {
  const std::string dir = test::temp_dir();
  std::filesystem::create_directories(dir + "/test");
  std::filesystem::create_directories(dir + "/dev");
  test::write_file(dir + "/test/anatomy_test.csv",
                   "question,choice0,choice1,choice2,choice3,answer\n"
                   "\" What bone, in the arm? \",ulna,\"femur, the \"\"thigh\"\"\",tibia,\"two\nlines\",0\n");
  test::write_file(dir + "/dev/anatomy_dev.csv", "question,choice0,choice1,choice2,choice3,answer\nQ1,a,b,c,d,B\nQ2,e,f,g,h,3\n");
  const McTask t = read_mmlu(dir);
  ASSERT_EQ(t.docs.size(), 1u);
  EXPECT_EQ(t.docs[0].text, "What bone, in the arm?\nA. ulna\nB. femur, the \"thigh\"\nC. tibia\nD. two\nlines\nAnswer:");
  EXPECT_EQ(t.docs[0].choices, (std::vector<std::string>{"A", "B", "C", "D"}));
  EXPECT_EQ(mc_context(t, 0, 1),
            "The following are multiple choice questions (with answers) about anatomy.\n\n"
            "Q1\nA. a\nB. b\nC. c\nD. d\nAnswer: B\n\n" + t.docs[0].text);
  EXPECT_THROW(mc_context(t, 0, 3), Error);
  // lm-eval's mmlu_continuation: "Question: ..\nAnswer:", the answers' own text as choices,
  // its shorter description, and the dev examples answered with their text.
  const McTask c = read_mmlu(dir, {}, MmluFormat::Continuation);
  EXPECT_EQ(c.name, "mmlu_continuation");
  ASSERT_EQ(c.docs.size(), 1u);
  EXPECT_EQ(c.docs[0].text, "Question: What bone, in the arm?\nAnswer:");
  EXPECT_EQ(c.docs[0].choices, (std::vector<std::string>{"ulna", "femur, the \"thigh\"", "tibia", "two\nlines"}));
  EXPECT_EQ(c.docs[0].gold, 0);
  EXPECT_EQ(c.docs[0].subject, "anatomy");
  EXPECT_EQ(mc_context(c, 0, 2),
            "The following are questions (with answers) about anatomy.\n\n"
            "Question: Q1\nAnswer: b\n\nQuestion: Q2\nAnswer: h\n\n" + c.docs[0].text);
  EXPECT_EQ(mmlu_category("anatomy"), "stem");
  EXPECT_EQ(mmlu_category("professional_law"), "humanities");
  EXPECT_EQ(mmlu_subjects().size(), 57u);
  test::write_file(dir + "/test/anatomy_test.csv", "question,choice0,choice1,choice2,choice3,answer\nq,a,b,c,d,7\n");
  EXPECT_THROW(read_mmlu(dir), Error);
  EXPECT_THROW(read_mmlu(dir, {"no_such_subject"}), Error);
}

TEST(EvalTasks, Gsm8kAnswerExtraction) {
  EXPECT_EQ(gsm8k_strict_answer("so 9 * 2 = 18\n#### 18"), "18");
  EXPECT_EQ(gsm8k_strict_answer("#### 1,234"), "1234");
  EXPECT_EQ(gsm8k_strict_answer("The answer is 18."), "");
  EXPECT_EQ(gsm8k_flexible_answer("She pays $1,200. Then 3 more, so 45."), "45");
  EXPECT_EQ(gsm8k_flexible_answer("costs $12.50 in total"), "12.50");
  EXPECT_EQ(gsm8k_flexible_answer("no numbers"), "");
  EXPECT_EQ(normalize_number("$5."), "5");
}

// Values printed by CPython 3.11: random.Random(7).getrandbits(32) x3, then .sample(range(10), 4)
// (the pool algorithm) and .sample(range(1000), 8) (the set algorithm, k > 5).
TEST(EvalPythonRandom, MatchesCPython) {
  PythonRandom r(7);
  EXPECT_EQ(r.next_u32(), 1390851128u);
  EXPECT_EQ(r.next_u32(), 4071050724u);
  EXPECT_EQ(r.next_u32(), 647892279u);
  EXPECT_EQ(r.sample(10, 4), (std::vector<size_t>{6, 0, 1, 9}));
  EXPECT_EQ(r.sample(1000, 8), (std::vector<size_t>{548, 96, 374, 596, 59, 931, 519, 219}));
  EXPECT_THROW(lm_eval_fewshot_draws(3, 1, 4), Error);
}

TEST(EvalMetrics, MeanStderrAndArgmax) {
  const Metric m = mean_with_stderr({1, 0, 1, 1});
  EXPECT_DOUBLE_EQ(m.value, 0.75);
  EXPECT_NEAR(m.stderr_, std::sqrt(0.25) / 2.0, 1e-12);  // sample sd sqrt(0.25), n = 4
  EXPECT_EQ(argmax_index({-3, -1, -1, -2}), 1u);         // the first of a tie
}

TEST(EvalRolling, WindowsScoreEveryTokenOnceWithLmEvalsContexts) {
  std::vector<int32_t> t = {10, 11, 12, 13, 14, 15, 16, 17, 18, 19};
  const auto w = rolling_windows(t, 99, 4);
  ASSERT_EQ(w.size(), 3u);
  EXPECT_EQ(w[0].first, (std::vector<int32_t>{99}));
  EXPECT_EQ(w[0].second, (std::vector<int32_t>{10, 11, 12, 13}));
  EXPECT_EQ(w[1].first, (std::vector<int32_t>{13}));
  EXPECT_EQ(w[1].second, (std::vector<int32_t>{14, 15, 16, 17}));
  // The short last window keeps a full window of context.
  EXPECT_EQ(w[2].first, (std::vector<int32_t>{15, 16, 17}));
  EXPECT_EQ(w[2].second, (std::vector<int32_t>{18, 19}));
  for (const auto& [c, k] : w) EXPECT_LE(c.size() + k.size() - 1, 4u);
}

TEST(EvalEncode, TrailingWhitespaceMovesToTheContinuation) {
  auto m = load_model(kModel);
  const Tokenizer& tok = m->require_tokenizer();
  const EncodedPair a = encode_pair(tok, "Question: what?\nAnswer:", " yes");
  const EncodedPair b = encode_pair(tok, "Question: what?\nAnswer: ", "yes");
  EXPECT_EQ(a.context, b.context);
  EXPECT_EQ(a.continuation, b.continuation);
  std::vector<int32_t> whole = a.context;
  whole.insert(whole.end(), a.continuation.begin(), a.continuation.end());
  EXPECT_EQ(whole, tok.encode("Question: what?\nAnswer: yes", true));
}

// log p(continuation | context) one sequence at a time, through Session::eval.
double reference_ll(const Model& m, ThreadPool& pool, const std::vector<int32_t>& ctx, const std::vector<int32_t>& cont,
                    const Numerics& num, LinearAdapter* adapter = nullptr) {
  Session s(m, int(ctx.size() + cont.size()), pool);
  s.set_numerics(num);
  if (adapter) s.set_adapter(0, adapter);
  std::vector<int32_t> all = ctx;
  all.insert(all.end(), cont.begin(), cont.end() - 1);
  const float* logits = s.eval(all, true);  // [all, n_vocab]
  double ll = 0;
  for (size_t k = 0; k < cont.size(); ++k) {
    const float* row = logits + (ctx.size() - 1 + k) * size_t(m.hp.n_vocab);
    ll -= token_nll(row, m.hp.n_vocab, cont[k]);
  }
  return ll;
}

TEST(EvalScorer, BatchedWithSharedPrefixesEqualsOneSequenceAtATime) {
  auto m = load_model(kModel);
  ThreadPool pool(2);
  const Tokenizer& tok = m->require_tokenizer();
  // A long shared few-shot block (over one 256-token step) makes prefix reuse and chunking run.
  std::string shots;
  for (int i = 0; i < 16; ++i) shots += "Question: what is item " + std::to_string(i) + " of the list?\nAnswer: number " + std::to_string(i) + "\n\n";
  std::vector<LlRequest> req;
  for (int q = 0; q < 7; ++q) {
    LlRequest r;
    r.context = tok.encode(shots + "Question: which colour is sample " + std::to_string(q) + "?\nAnswer:", true);
    for (const char* c : {" red", " a pale shade of blue", " green", " it is not known"}) r.continuations.push_back(tok.encode(c, false));
    req.push_back(r);
  }
  ASSERT_GT(req[0].context.size(), 256u);
  for (Numerics num : {Numerics{false, false}, Numerics{}}) {
    ScoreOptions so;
    so.n_ctx = 1024;     // beyond the training context: no truncation here
    so.batch_slots = 9;  // two questions per batch, so slots are reused across batches
    so.numerics = num;
    ScoreStats stats;
    const auto got = score_loglikelihood(*m, pool, req, so, {}, &stats);
    EXPECT_GT(stats.tokens_reused, 0);
    for (size_t i = 0; i < req.size(); ++i)
      for (size_t c = 0; c < req[i].continuations.size(); ++c) {
        const double want = reference_ll(*m, pool, req[i].context, req[i].continuations[c], num);
        EXPECT_NEAR(got[i].loglikelihood[c], want, 1e-4 * std::abs(want) + 1e-4) << i << "/" << c;
      }
  }
  EXPECT_THROW(score_loglikelihood(*m, pool, std::vector<LlRequest>{LlRequest{{}, {{1}}, {}}}, {}), Error);
  EXPECT_THROW(score_loglikelihood(*m, pool, std::vector<LlRequest>{LlRequest{{1}, {{}}, {}}}, {}), Error);
}

// Each request's own adapter (GLIDER gives every document its own prior) applies to its slots
// only, and a cached prefix is never reused across adapters: requests that alternate between
// two adapters and the model's own (none) over one shared few-shot block score as each would
// alone.
TEST(EvalScorer, EachRequestRunsOnItsOwnAdapter) {
  auto m = load_model(kModel);
  ThreadPool pool(2);
  const Tokenizer& tok = m->require_tokenizer();
  auto lib = std::make_shared<LoraLibrary>();
  for (int a = 0; a < 2; ++a) lib->adapters.push_back(init_lora(*m, "a" + std::to_string(a), 4, 8.0f, {"all"}, true, 90 + a));
  std::vector<std::shared_ptr<LinearAdapter>> adapters = {nullptr};
  for (const char* name : {"a0", "a1"}) adapters.push_back(std::make_shared<RoutedLora>(lib, make_lora_router(*lib, name, 1)));
  std::string shots;
  for (int i = 0; i < 6; ++i) shots += "Question: what is item " + std::to_string(i) + "?\nAnswer: number " + std::to_string(i) + "\n\n";
  std::vector<LlRequest> req;
  for (int q = 0; q < 6; ++q) {
    LlRequest r;
    r.context = tok.encode(shots + "Question: which colour is sample " + std::to_string(q % 2) + "?\nAnswer:", true);
    for (const char* c : {" red", " a pale shade of blue"}) r.continuations.push_back(tok.encode(c, false));
    r.on.adapter = adapters[size_t(q % 3)];
    req.push_back(r);
  }
  ScoreOptions so;
  so.batch_slots = 3;  // one question per batch: every prompt meets the previous one's cache
  so.numerics = Numerics{false, false};
  const auto got = score_loglikelihood(*m, pool, req, so);
  for (size_t i = 0; i < req.size(); ++i)
    for (size_t c = 0; c < req[i].continuations.size(); ++c) {
      const double want = reference_ll(*m, pool, req[i].context, req[i].continuations[c], so.numerics, req[i].on.adapter.get());
      EXPECT_NEAR(got[i].loglikelihood[c], want, 1e-4 * std::abs(want) + 1e-4) << i << "/" << c;
    }
  // The adapters change the scores (else the comparison above proves nothing).
  EXPECT_GT(std::abs(got[0].loglikelihood[1] - got[2].loglikelihood[1]), 1e-3);  // same context, none against a1
  EXPECT_GT(std::abs(got[2].loglikelihood[1] - got[4].loglikelihood[1]), 1e-3);  // a1 against a0
}

TEST(EvalGenerate, BatchedGreedyEqualsOneSequenceAtATime) {
  auto m = load_model(kModel);
  ThreadPool pool(2);
  const Tokenizer& tok = m->require_tokenizer();
  const Numerics num{false, false};
  std::vector<GenRequest> req;
  for (const char* p : {"Once upon a time", "The cat sat on", "def add(a, b):", "In the beginning"})
    req.push_back(GenRequest{tok.encode(p, true), {}});
  GenOptions go;
  go.max_tokens = 12;
  go.batch_slots = 3;
  go.numerics = num;
  const auto got = generate_until(*m, pool, req, go);
  for (size_t i = 0; i < req.size(); ++i) {
    Session s(*m, 64, pool);
    s.set_numerics(num);
    std::vector<int32_t> out;
    const float* logits = s.eval(req[i].prompt, false);
    for (int k = 0; k < go.max_tokens; ++k) {
      const int32_t t = argmax(logits, m->hp.n_vocab);
      if (t == tok.spec().eos_id) break;
      out.push_back(t);
      logits = s.eval(std::vector<int32_t>{t}, false);
    }
    EXPECT_EQ(got[i].text, tok.decode(out)) << i;
  }
  // A stop string cuts the text before it.
  go.until = {got[0].text.substr(got[0].text.size() / 2, 2)};
  const auto cut = generate_until(*m, pool, std::span(req).first(1), go);
  EXPECT_EQ(cut[0].stop_reason, "stop");
  EXPECT_EQ(cut[0].text.find(go.until[0]), std::string::npos);
}

}  // namespace
}  // namespace mf::eval
