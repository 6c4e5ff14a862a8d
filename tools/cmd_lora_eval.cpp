// moeforge lora eval: a LoRA library on tasks given as text, routed several ways, side by side.
// Each task file is cut into windows of --window-tokens tokens (evenly spaced, the same for
// every route); a route's loss on a task is the mean NLL of every window token but the first.
// A task named like an adapter is held in (its "oracle" is that adapter alone); others are
// held out. Routes: base, oracle, uniform, arrow, global, glider, and any fixed spec
// (NAME or NAME:W,...). global and glider take each window's prior from its first
// --query-tokens tokens; the report gives how often the prior's top adapter is a held-in task's own.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>

#include "adapters/glider.h"
#include "adapters/lora_library.h"
#include "core/error.h"
#include "core/text_file.h"
#include "model/perplexity.h"
#include "model/session.h"
#include "tools/commands.h"
#include "tools/common.h"
#include "tools/progress.h"

namespace mf::cli {
namespace {

struct LoraEvalOptions {
  ModelOptions model;
  std::vector<std::string> tasks;  // NAME=FILE
  std::vector<std::string> routes{"base", "oracle", "uniform", "arrow", "global", "glider"};
  int windows = 16, window_tokens = 128, query_tokens = 32;
  bool json = false;
  std::string report;
};

struct Task {
  std::string name;
  std::vector<std::vector<int32_t>> windows;
  bool held_in = false;
};

std::vector<Task> read_tasks(const LoraEvalOptions& o, const Model& m, const LoraLibrary& lib) {
  if (o.tasks.empty()) fail("give at least one --task NAME=FILE");
  std::vector<Task> tasks;
  for (const std::string& spec : o.tasks) {
    const size_t eq = spec.find('=');
    if (eq == std::string::npos || eq == 0) fail("--task '", spec, "': expected NAME=FILE");
    Task t;
    t.name = spec.substr(0, eq);
    t.held_in = lib.find(t.name) >= 0;
    const std::vector<int32_t> ids = m.require_tokenizer().encode(read_text_file(spec.substr(eq + 1)), false);
    const int64_t T = o.window_tokens;
    if (int64_t(ids.size()) < T) fail("--task ", t.name, ": ", ids.size(), " tokens, fewer than one window of ", T);
    const int64_t n = std::min<int64_t>(o.windows, int64_t(ids.size()) / T);
    const int64_t stride = (int64_t(ids.size()) - T) / std::max<int64_t>(n - 1, 1);
    for (int64_t w = 0; w < n; ++w) t.windows.emplace_back(ids.begin() + w * stride, ids.begin() + w * stride + T);
    tasks.push_back(std::move(t));
  }
  return tasks;
}

void run_lora_eval(const LoraEvalOptions& o) {
  if (o.model.lora.empty()) fail("lora eval needs a library (--lora NAME=PATH ...)");
  if (o.window_tokens < 2 || o.query_tokens < 1 || o.windows < 1) fail("--window-tokens >= 2, --query-tokens and --windows >= 1");
  auto m = load(o.model);
  const auto* loaded = dynamic_cast<const RoutedLora*>(m->adapter.get());
  std::shared_ptr<const LoraLibrary> lib = loaded->shared_library();
  const std::vector<Task> tasks = read_tasks(o, *m, *lib);
  ThreadPool pool(o.model.threads);
  std::shared_ptr<const GlobalIndex> index;  // built when a route first needs a prior

  const int64_t V = m->hp.n_vocab;
  Session s(*m, o.window_tokens, pool);
  s.set_numerics(Numerics{false, false});
  nlohmann::json results = nlohmann::json::object();
  int64_t total = 0, done = 0;
  for (const Task& t : tasks) total += int64_t(t.windows.size());
  Progress progress("lora eval", int(total * int64_t(o.routes.size())));
  std::map<std::string, std::shared_ptr<const LoraRouter>> routers;
  for (const std::string& route : o.routes) {
    nlohmann::json per_task = nlohmann::json::object();
    for (const Task& t : tasks) {
      std::string spec = route == "oracle" ? t.name : route;
      if (route == "oracle" && !t.held_in) {  // held out: no adapter of its own
        done += int64_t(t.windows.size());
        progress.update(int(done));
        continue;
      }
      std::shared_ptr<const LoraRouter> router;
      if (route != "base") {
        auto it = routers.find(spec);
        if (it == routers.end()) it = routers.emplace(spec, make_lora_router(*lib, spec, o.model.lora_top_k)).first;
        router = it->second;
        if (router->needs_prior() && !index)
          index = std::make_shared<GlobalIndex>(build_global_index(*m, pool, *lib, o.model.glider_temperature, o.model.glider_alpha));
      }
      double nll = 0;
      int64_t scored = 0, prior_hits = 0;
      std::vector<int64_t> picks(lib->adapters.size(), 0);
      const auto t0 = std::chrono::steady_clock::now();
      for (const std::vector<int32_t>& w : t.windows) {
        std::unique_ptr<RoutedLora> lora;
        if (router) {
          lora = std::make_unique<RoutedLora>(lib, router);
          if (router->needs_prior()) {
            lora->set_global_index(index);
            set_query(*lora, *m, pool, std::span<const int32_t>(w).first(size_t(std::min<int64_t>(o.query_tokens, int64_t(w.size())))));
            const auto& b = lora->prior();
            if (t.held_in && std::max_element(b.begin(), b.end()) - b.begin() == lib->find(t.name)) ++prior_hits;
          }
        }
        s.reset();
        s.set_adapter(0, lora.get());
        const float* logits = s.eval(w, /*all_logits=*/true);  // [T, V]
        for (size_t i = 0; i + 1 < w.size(); ++i) nll += token_nll(logits + int64_t(i) * V, int32_t(V), w[i + 1]);
        scored += int64_t(w.size()) - 1;
        if (lora)
          for (size_t a = 0; a < picks.size(); ++a) picks[a] += lora->usage().picks[a];
        progress.update(int(++done));
      }
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      nlohmann::json r = {{"loss", nll / double(scored)}, {"ppl", std::exp(nll / double(scored))}, {"tokens", scored},
                          {"tokens_per_s", double(scored + int64_t(t.windows.size())) / secs}};
      if (router && router->needs_prior() && t.held_in) r["prior_top1_is_own"] = double(prior_hits) / double(t.windows.size());
      if (router) {
        nlohmann::json share = nlohmann::json::object();
        int64_t all = 0;
        for (int64_t p : picks) all += p;
        for (size_t a = 0; a < picks.size(); ++a)
          if (picks[a]) share[lib->adapters[a].name] = double(picks[a]) / double(all);
        r["picks"] = share;
      }
      per_task[t.name] = r;
    }
    results[route] = per_task;
  }
  progress.finish();

  nlohmann::json task_info = nlohmann::json::array();
  for (const Task& t : tasks) task_info.push_back({{"name", t.name}, {"held_in", t.held_in}, {"windows", t.windows.size()}});
  const nlohmann::json out = {{"model", o.model.model}, {"window_tokens", o.window_tokens}, {"query_tokens", o.query_tokens},
                              {"top_k", o.model.lora_top_k}, {"glider_alpha", o.model.glider_alpha},
                              {"glider_temperature", o.model.glider_temperature}, {"tasks", task_info}, {"routes", results}};
  // Markdown: loss per task (held-in marked *), means over held-in and held-out tasks.
  std::string md = "| route |";
  for (const Task& t : tasks) md += " " + t.name + (t.held_in ? "*" : "") + " |";
  md += " held-in mean | held-out mean |\n|---|";
  for (size_t i = 0; i < tasks.size() + 2; ++i) md += "---|";
  md += "\n";
  for (const std::string& route : o.routes) {
    md += "| " + route + " |";
    double in = 0, out_sum = 0;
    int n_in = 0, n_out = 0;
    for (const Task& t : tasks) {
      if (!results[route].contains(t.name)) {
        md += " - |";
        continue;
      }
      const double loss = results[route][t.name]["loss"].get<double>();
      char cell[32];
      std::snprintf(cell, sizeof cell, " %.4f |", loss);
      md += cell;
      (t.held_in ? in : out_sum) += loss;
      ++(t.held_in ? n_in : n_out);
    }
    char cell[64];
    std::snprintf(cell, sizeof cell, " %s | %s |\n", n_in ? std::to_string(in / n_in).substr(0, 6).c_str() : "-",
                  n_out ? std::to_string(out_sum / n_out).substr(0, 6).c_str() : "-");
    md += cell;
  }
  if (!o.report.empty()) write_text_atomic(o.report, md);
  if (o.json)
    std::printf("%s\n", dump_json(out).c_str());
  else
    std::printf("%s", md.c_str());
}

}  // namespace

void add_lora_eval(CLI::App* lora) {
  auto o = std::make_shared<LoraEvalOptions>();
  CLI::App* cmd = lora->add_subcommand("eval", "Loss of a LoRA library on text tasks under several routings, side by side");
  add_model_options(cmd, o->model);
  cmd->add_option("--task", o->tasks, "NAME=FILE (repeat): a task as text; held in when an adapter has its name")->required();
  cmd->add_option("--routes", o->routes, "Routes to compare (default base,oracle,uniform,arrow,global,glider)")->delimiter(',');
  cmd->add_option("--windows", o->windows, "Windows per task (default 16)");
  cmd->add_option("--window-tokens", o->window_tokens, "Tokens per window (default 128)");
  cmd->add_option("--query-tokens", o->query_tokens, "Tokens of a window the global router sees (default 32)");
  cmd->add_flag("--json", o->json, "Print every figure as JSON");
  cmd->add_option("--report", o->report, "Also write the markdown table here");
  cmd->callback([o] { run_lora_eval(*o); });
}

}  // namespace mf::cli
