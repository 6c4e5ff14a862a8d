#include "tools/eval_runner.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>

#include "core/error.h"
#include "core/text_file.h"
#include "tools/common.h"
#include "tools/eval_report.h"
#include "tools/progress.h"

namespace mf::cli {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string default_data_dir() {
  if (const char* d = std::getenv("MOEFORGE_EVAL_DATA"); d && *d) return d;
  return "../shared/data/eval";
}

json metric_json(const eval::Metric& m) { return {{"value", m.value}, {"stderr", m.stderr_}}; }

}  // namespace

std::vector<LoadedTask> load_tasks(const TaskSpec& spec) {
  const fs::path data = spec.data.empty() ? default_data_dir() : spec.data;
  std::vector<std::string> names;
  for (size_t p = 0; p <= spec.tasks.size();) {
    size_t q = spec.tasks.find(',', p);
    if (q == std::string::npos) q = spec.tasks.size();
    if (q > p) names.push_back(spec.tasks.substr(p, q - p));
    p = q + 1;
  }
  std::vector<std::pair<std::string, std::string>> files;
  for (const std::string& s : spec.task_files) {
    const size_t eq = s.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == s.size()) fail("--task-file '", s, "': expected NAME=FILE");
    files.emplace_back(s.substr(0, eq), s.substr(eq + 1));
  }
  if (names.empty() && files.empty()) fail("no tasks: give --tasks and/or --task-file");
  std::vector<LoadedTask> out;
  for (const std::string& n : names) {
    LoadedTask t{n, {}, {}, {}};
    if (n == "arc_easy" || n == "piqa") {
      t.mc = eval::read_mc_jsonl(n, (data / "mc" / (n + ".jsonl")).string());
    } else if (n == "mmlu" || n.starts_with("mmlu_")) {
      // mmlu[_continuation][_<subject>]: lm-eval's letter form or its cloze form, all subjects or one.
      const bool cloze = n == "mmlu_continuation" || n.starts_with("mmlu_continuation_");
      const std::string prefix = cloze ? "mmlu_continuation_" : "mmlu_";
      const std::string subject = n.size() > prefix.size() ? n.substr(prefix.size()) : "";
      t.mc = eval::read_mmlu((data / "mmlu").string(), subject.empty() ? std::vector<std::string>{} : std::vector{subject},
                             cloze ? eval::MmluFormat::Continuation : eval::MmluFormat::Letters);
      t.mc->name = n;
    } else if (n == "gsm8k") {
      t.gen = eval::read_gsm8k((data / "gsm8k" / "test.jsonl").string(), (data / "gsm8k" / "train.jsonl").string());
    } else if (n == "wikitext") {
      t.text = read_text_file((data / "wikitext2" / "test.txt").string());
    } else {
      fail("unknown task '", n, "' (known: arc_easy, piqa, mmlu, mmlu_<subject>, mmlu_continuation, mmlu_continuation_<subject>, gsm8k, wikitext; or --task-file NAME=FILE)");
    }
    out.push_back(std::move(t));
  }
  for (const auto& [name, file] : files) out.push_back(LoadedTask{name, eval::read_mc_jsonl(name, file), {}, {}});
  for (const std::string& l : spec.limits) {
    const size_t eq = l.find('=');
    const std::string name = eq == std::string::npos ? "" : l.substr(0, eq), value = l.substr(eq == std::string::npos ? 0 : eq + 1);
    int64_t n = -1;
    try {
      size_t used = 0;
      n = std::stoll(value, &used);
      if (used != value.size()) n = -1;
    } catch (const std::exception&) {
    }
    if (n < 0) fail("--limit '", l, "': expected N or TASK=N with N >= 0");
    bool found = name.empty();
    for (LoadedTask& t : out)
      if (name.empty() || t.name == name) t.limit = n, found = true;
    if (!found) fail("--limit '", l, "': no task named '", name, "'");
  }
  for (size_t i = 0; i < out.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      if (out[i].name == out[j].name) fail("task '", out[i].name, "' is given twice");
  // Too few few-shot examples fail here, before any model work.
  for (const LoadedTask& t : out) {
    if (t.mc)
      for (size_t d = 0; d < t.mc->docs.size(); ++d)
        if (d == 0 || t.mc->docs[d].subject != t.mc->docs[d - 1].subject)
          eval::mc_context(*t.mc, d, spec.shots >= 0 ? spec.shots : t.mc->default_shots);
    if (t.gen) eval::lm_eval_fewshot_draws(t.gen->fewshot_pool.size(), 1, spec.shots >= 0 ? spec.shots : t.gen->default_shots);
  }
  return out;
}

json task_result_json(const eval::TaskResult& r) {
  json j = {{"kind", r.kind}, {"shots", r.shots}, {"n", r.n}, {"seconds", r.seconds},
            {"tokens_run", r.tokens_run}, {"tokens_reused", r.tokens_reused}, {"routes", r.routes}};
  for (const auto& [k, m] : r.metrics) j["metrics"][k] = metric_json(m);
  for (const auto& [k, m] : r.groups) j["groups"][k] = metric_json(m);
  if (r.seconds > 0) j["tokens_per_second"] = double(r.tokens_run) / r.seconds;
  return j;
}

json run_tasks(const Model& model, ThreadPool& pool, const std::vector<LoadedTask>& tasks, const eval::EvalOptions& options,
               const eval::PromptRouter& route, bool quiet, bool silent, std::string* records) {
  json out = json::object();
  for (const LoadedTask& t : tasks) {
    eval::EvalOptions eo = options;
    eo.limit = t.limit;
    std::unique_ptr<Progress> bar;
    const eval::EvalProgress cb = [&](int64_t done, int64_t total) {
      if (!bar) bar = std::make_unique<Progress>(t.name, total, !quiet);
      bar->update(done);
    };
    eval::TaskResult r;
    if (t.mc) r = eval::evaluate_mc(model, pool, *t.mc, eo, route, cb);
    else if (t.gen) r = eval::evaluate_generation(model, pool, *t.gen, eo, route, cb);
    else r = eval::evaluate_wikitext(model, pool, t.name, t.text, eo, route, cb);
    if (bar) bar->finish();
    out[t.name] = task_result_json(r);
    out[t.name]["limit"] = t.limit;
    if (records)
      for (const json& rec : r.records) *records += dump_json(rec) + "\n";
    if (!silent) {
      const auto [key, v] = headline_metric(out[t.name]);
      std::string line = t.name + ": " + key + " " + std::to_string(v);
      if (r.metrics.count("acc_norm")) line += ", acc_norm " + std::to_string(r.metrics["acc_norm"].value);
      if (r.metrics.count("exact_match_strict")) line += ", strict " + std::to_string(r.metrics["exact_match_strict"].value);
      if (r.metrics.count("word_perplexity")) line += ", word perplexity " + std::to_string(r.metrics["word_perplexity"].value);
      std::fprintf(stderr, "%s (%lld documents, %.1f s, %.0f tokens/s)\n", line.c_str(), (long long)r.n, r.seconds,
                   r.seconds > 0 ? double(r.tokens_run) / r.seconds : 0.0);
    }
  }
  return out;
}

}  // namespace mf::cli
