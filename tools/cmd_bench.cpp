// moeforge bench: prefill and decode throughput, medians over repetitions.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>

#include "core/error.h"
#include "model/session.h"
#include "tools/commands.h"
#include "tools/common.h"
#include "tools/progress.h"

namespace mf::cli {

namespace {

struct BenchOptions {
  ModelOptions model;
  int n_prompt = 128;
  int n_gen = 64;
  int reps = 5;
  bool json = false;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Bytes of weights one decode step reads: every matrix once, plus one embedding row.
int64_t decode_weight_bytes(const Model& m) {
  int64_t b = int64_t(m.w.output.nbytes()) + int64_t(m.w.tok_embd.row_stride());
  for (auto& l : m.w.layers)
    for (const TensorView* t : {&l.wq, &l.wk, &l.wv, &l.wo, &l.ffn_gate, &l.ffn_up, &l.ffn_down}) b += int64_t(t->nbytes());
  return b;
}

void run_bench(const BenchOptions& o) {
  auto model = load(o.model);
  ThreadPool pool(o.model.threads);
  Session session(*model, o.n_prompt + o.n_gen, pool);
  std::mt19937 rng(42);
  std::vector<int32_t> prompt(o.n_prompt);
  for (auto& t : prompt) t = int32_t(rng() % model->hp.n_vocab);
  using clock = std::chrono::steady_clock;
  auto seconds = [](clock::time_point a, clock::time_point b) { return std::chrono::duration<double>(b - a).count(); };

  std::vector<double> prefill_tps, decode_tps;
  Progress progress("bench", o.reps + 1);
  for (int r = 0; r <= o.reps; ++r) {  // repetition 0 warms caches and is discarded
    if (o.n_prompt > 0) {
      session.reset();
      auto t0 = clock::now();
      session.eval(prompt, false);
      if (r) prefill_tps.push_back(o.n_prompt / seconds(t0, clock::now()));
    }
    if (o.n_gen > 0) {  // like llama-bench's tg test: generation from an empty context
      session.reset();
      int32_t tok = prompt.empty() ? 1 : prompt[0];
      auto t0 = clock::now();
      for (int i = 0; i < o.n_gen; ++i) {
        const float* logits = session.eval({&tok, 1}, false);
        tok = int32_t(std::max_element(logits, logits + model->hp.n_vocab) - logits);
      }
      if (r) decode_tps.push_back(o.n_gen / seconds(t0, clock::now()));
    }
    progress.update(r + 1);
  }
  progress.finish();
  double pp = prefill_tps.empty() ? 0 : median(prefill_tps);
  double tg = decode_tps.empty() ? 0 : median(decode_tps);
  int64_t bytes = decode_weight_bytes(*model);
  if (o.json) {
    nlohmann::json j = {{"model", o.model.model},     {"threads", pool.size()},  {"prompt_tokens", o.n_prompt},
                        {"gen_tokens", o.n_gen},       {"reps", o.reps},          {"prefill_tps", pp},
                        {"decode_tps", tg},            {"prefill_tps_all", prefill_tps}, {"decode_tps_all", decode_tps},
                        {"decode_weight_bytes", bytes}, {"decode_gbps", tg * double(bytes) / 1e9}};
    std::printf("%s\n", dump_json(j).c_str());
  } else {
    std::printf("model %s  threads %d\n", o.model.model.c_str(), pool.size());
    std::printf("prefill %d tokens: %.2f tok/s (median of %d)\n", o.n_prompt, pp, o.reps);
    std::printf("decode  %d tokens: %.2f tok/s (median of %d), %.2f GB/s of weights\n", o.n_gen, tg, o.reps,
                tg * double(bytes) / 1e9);
  }
}

}  // namespace

void add_bench(CLI::App& app) {
  auto o = std::make_shared<BenchOptions>();
  CLI::App* cmd = app.add_subcommand("bench", "Measure prefill and decode tokens/s (medians over repetitions)");
  add_model_options(cmd, o->model);
  cmd->add_option("-p,--prompt-tokens", o->n_prompt, "Prompt tokens for the prefill test")->check(CLI::NonNegativeNumber);
  cmd->add_option("-n,--gen-tokens", o->n_gen, "Tokens for the decode test")->check(CLI::NonNegativeNumber);
  cmd->add_option("-r,--reps", o->reps, "Repetitions (after one warm-up)")->check(CLI::PositiveNumber);
  cmd->add_flag("--json", o->json, "Print {\"prefill_tps\", \"decode_tps\", ...} as JSON");
  cmd->callback([o] { run_bench(*o); });
}

}  // namespace mf::cli
