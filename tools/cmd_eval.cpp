// moeforge eval: task accuracy as lm-evaluation-harness measures it (ARC-Easy, PIQA, MMLU,
// GSM8K, WikiText-2, any multiple-choice JSONL), for a dense model or a .moe routed per
// document; per-document records, --json, and a markdown + HTML report.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "adapters/glider.h"
#include "core/error.h"
#include "core/text_file.h"
#include "eval/evaluator.h"
#include "eval/paired_difference.h"
#include "model/throughput.h"
#include "tools/commands.h"
#include "tools/common.h"
#include "tools/eval_report.h"
#include "tools/eval_runner.h"
#include "tools/moe_cli.h"
#include "tools/progress.h"

namespace mf::cli {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct EvalCliOptions {
  ModelOptions model;
  std::string domain, records, report, label;
  TaskSpec tasks{"arc_easy,piqa", {}, "", -1, {}};
  eval::EvalOptions eval;
  bool f32 = false, json_out = false, bench = false, quiet = false;
};

void run_eval(const EvalCliOptions& o) {
  const std::vector<LoadedTask> tasks = load_tasks(o.tasks);  // bad task input fails before the model loads
  LoadedModel m = load_any(o.model);
  const Model& model = m.model();
  model.require_tokenizer();
  ThreadPool pool(o.model.threads);
  eval::EvalOptions eo = o.eval;
  eo.shots = o.tasks.shots;
  if (o.f32) eo.numerics = Numerics{false, false};
  if (!o.domain.empty()) resolve_routing(m, o.domain, {}, pool);  // an unknown --domain fails now

  const eval::PromptRouter route = [&](std::span<const int32_t> prompt) {
    if (model.mode.enabled()) return eval::RouteChoice{nullptr, model.mode.choice_name(model.mode_expert), nullptr};  // MoDE: its gate routes per token
    const Routing r = resolve_routing(m, o.domain, prompt, pool);
    eval::RouteChoice rc{routed_layers(m, r), r.expert_name, nullptr};
    // GLIDER / global routing: each document gets the prior its own prompt gives, as a request
    // would in the server; the report counts documents under the adapter the prior ranks first.
    if (const auto* lora = dynamic_cast<const RoutedLora*>(model.adapter.get()); lora && lora->router().needs_prior()) {
      auto own = with_query(*lora, model, pool, prompt);
      const std::vector<float>& prior = own->prior();
      const size_t top = size_t(std::max_element(prior.begin(), prior.end()) - prior.begin());
      rc.name = "prior:" + lora->library().adapters.at(top).name;
      rc.adapter = std::move(own);
    }
    return rc;
  };
  json run = {{"model", o.model.model}, {"label", o.label.empty() ? fs::path(o.model.model).filename().string() : o.label},
              {"moe", bool(m.moe)}, {"domain", o.domain}, {"numerics", o.f32 ? "f32" : "llama.cpp"},
              {"threads", pool.size()}};
  if (m.moe) run["density"] = o.domain == "dense" ? 1.0 : m.moe->info().density;
  if (model.mode.enabled()) run["mode_expert"] = model.mode.choice_name(model.mode_expert);
  std::string records;
  run["tasks"] = run_tasks(model, pool, tasks, eo, route, o.quiet, o.json_out, &records);
  if (o.bench) {
    // Speed of what ran: dense, the forced expert, or the expert most documents went to.
    std::map<std::string, int64_t> total;
    for (const auto& [name, t] : run["tasks"].items())
      for (const auto& [e, n] : t["routes"].items()) total[e] += n.get<int64_t>();
    std::string busiest = "dense";
    int64_t most = -1;
    for (const auto& [e, n] : total)
      if (n > most) most = n, busiest = e;
    const std::vector<LayerWeights>* layers =
        busiest == "dense" || !m.moe ? nullptr : routed_layers(m, m.moe->force(busiest, {}, pool));
    ThroughputOptions to;
    const Throughput tp = measure_throughput(model, {layers}, to, pool).at(0);
    run["bench_config"] = busiest;
    run["decode_tps"] = tp.decode_tps;
    run["prefill_tps"] = tp.prefill_tps;
    run["decode_weight_bytes"] = tp.decode_weight_bytes;
  }
  // Outputs last, each atomically: a failure above leaves no partial report.
  if (!o.records.empty()) write_text_atomic(o.records, records);
  if (!o.report.empty()) write_eval_report({run}, o.report);
  if (o.json_out) std::printf("%s\n", dump_json(run, 1).c_str());
}

struct ReportOptions {
  std::vector<std::string> runs;
  std::string out;
};

void run_report(const ReportOptions& o) {
  std::vector<json> runs;
  for (const std::string& path : o.runs) {
    try {
      runs.push_back(json::parse(read_text_file(path)));
    } catch (const json::exception& e) {
      fail(path, ": not JSON (", e.what(), ")");
    }
  }
  write_eval_report(runs, o.out);
  std::fprintf(stderr, "wrote %s/report.md and %s/report.html\n", o.out.c_str(), o.out.c_str());
}

struct CompareOptions {
  std::string a, b;
  bool json_out = false;
};

// Run a against run b on the same documents, from their --records files.
void run_compare(const CompareOptions& o) {
  const eval::PairedDifference d = eval::paired_difference(read_text_file(o.a), read_text_file(o.b), o.a, o.b);
  if (o.json_out) {
    json j = {{"a", o.a}, {"b", o.b}, {"mean_diff", d.mean_diff}, {"mean_se", d.mean_se}, {"tasks", json::array()}};
    for (const eval::PairedTask& t : d.tasks)
      j["tasks"].push_back({{"task", t.task}, {"documents", t.n}, {"diff", t.diff}, {"se", t.se}, {"a_only", t.a_only},
                            {"b_only", t.b_only}});
    std::printf("%s\n", j.dump(1).c_str());
    return;
  }
  std::printf("accuracy of %s minus %s, in points, paired over the same documents:\n", o.a.c_str(), o.b.c_str());
  for (const eval::PairedTask& t : d.tasks)
    std::printf("%-24s %+7.2f ± %.2f  (%lld documents; %lld right only in a, %lld only in b)\n", t.task.c_str(), 100 * t.diff,
                100 * t.se, (long long)t.n, (long long)t.a_only, (long long)t.b_only);
  std::printf("%-24s %+7.2f ± %.2f  (tasks weighted equally)\n", "mean", 100 * d.mean_diff, 100 * d.mean_se);
}

}  // namespace

void add_eval(CLI::App& app) {
  auto o = std::make_shared<EvalCliOptions>();
  CLI::App* cmd = app.add_subcommand(
      "eval", "Task accuracy as lm-evaluation-harness scores it (ARC-Easy, PIQA, MMLU, GSM8K, WikiText-2)");
  add_model_options(cmd, o->model);
  add_domain_option(cmd, o->domain);
  cmd->add_option("--tasks", o->tasks.tasks,
                  "Comma-separated: arc_easy, piqa, mmlu (57 subjects, answer letters), mmlu_<subject>,\n"
                  "mmlu_continuation[_<subject>] (the answers' text, lm-eval's cloze form), gsm8k (5-shot chain\n"
                  "of thought, greedy), wikitext (word perplexity, bits per byte)")->capture_default_str();
  cmd->add_option("--task-file", o->tasks.task_files, "NAME=FILE: a multiple-choice JSONL task (query, choices, gold); repeatable");
  cmd->add_option("--data", o->tasks.data, "Directory of the task files (default: $MOEFORGE_EVAL_DATA, else ../shared/data/eval)");
  cmd->add_option("--shots", o->tasks.shots, "Few-shot examples (default: each task's: 0, GSM8K 5)")->check(CLI::Range(0, 64));
  cmd->add_option("--limit", o->tasks.limits,
                  "N or TASK=N (repeatable): only the first N documents of every task or of one (of each MMLU\n"
                  "subject)");
  cmd->add_option("--batch", o->eval.batch_slots, "Sequences per forward step")->check(CLI::Range(1, 256))->capture_default_str();
  cmd->add_option("--ctx", o->eval.n_ctx, "Window in tokens (default: the model's; WikiText at most 2048)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--max-gen-tokens", o->eval.max_gen_tokens, "Generation tasks: tokens at most (default 256)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_flag("--f32", o->f32, "f32 activations and attention (as transformers computes), not llama.cpp's numerics");
  cmd->add_flag("--bench", o->bench, "Also measure prefill and decode speed of the configuration that ran");
  cmd->add_option("--records", o->records, "Write one JSON line per document (log-likelihoods, prediction, route)");
  cmd->add_option("--report", o->report, "Write report.md and report.html into this directory");
  cmd->add_option("--label", o->label, "Name of this run in reports (default: the model file's name)");
  cmd->add_flag("--json", o->json_out, "Print the results as JSON (the input of eval-report)");
  cmd->add_flag("-q,--quiet", o->quiet, "No progress bar");
  cmd->callback([o] { run_eval(*o); });

  auto r = std::make_shared<ReportOptions>();
  CLI::App* rep = app.add_subcommand("eval-report", "One report (markdown + HTML with plots) from several eval --json results");
  rep->add_option("runs", r->runs, "eval --json output files")->required();
  rep->add_option("-o,--out", r->out, "Report directory")->required();
  rep->callback([r] { run_report(*r); });

  auto c = std::make_shared<CompareOptions>();
  CLI::App* cmp = app.add_subcommand(
      "eval-compare",
      "Accuracy difference of two runs on the same multiple-choice documents, per task and averaged, with\n"
      "standard errors from the per-document differences (about half an unpaired difference's)");
  cmp->add_option("a", c->a, "Per-document records of run a (eval --records, eval-moe's runs/*.records.jsonl)")->required();
  cmp->add_option("b", c->b, "Per-document records of run b, over the same documents")->required();
  cmp->add_flag("--json", c->json_out, "Print JSON");
  cmp->callback([c] { run_compare(*c); });
}

}  // namespace mf::cli
