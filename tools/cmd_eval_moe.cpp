// moeforge eval-moe: per-domain perplexity of domain experts against dense and same-density
// baselines, router accuracy, speed and memory; writes a markdown report, CSVs and SVG plots.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>

#include "calib/calibrate.h"
#include "calib/kmeans.h"
#include "core/error.h"
#include "model/perplexity.h"
#include "model/throughput.h"
#include "moe/moe_builder.h"
#include "tools/commands.h"
#include "tools/eval_moe_methods.h"
#include "tools/eval_moe_tasks.h"
#include "tools/common.h"
#include "tools/moe_cli.h"
#include "tools/progress.h"
#include "tools/svg_chart.h"

namespace mf::cli {

namespace {

struct EvalMoeOptions {
  ModelOptions model;
  std::string stats, out_dir;
  std::vector<std::string> tests, unseen;  // NAME=FILE
  std::vector<double> densities = {0.25, 0.5, 0.75};
  int subdomains = 1;
  std::function<std::string(const Model&)> checkpoint_key;  // of the parsed command (expert_checkpoint_key)
  int ctx = 128;
  int64_t max_tokens = 16384;
  int router_prompts = 100;
  std::vector<int> prompt_lengths = {32, 128};
  int bench_reps = 5;
  float threshold = 0.0f;
  std::string compensation = "auto", layer_widths = "auto";
  double refit_damp = BuildOptions{}.refit_damp;
  ExpertQualityOptions quality;
  double shared_fraction = BuildOptions{}.shared_fraction;
  RouterTrainOptions router;
  bool router_only = false;  // skip perplexity and speed (router experiments)
  std::vector<std::string> methods;  // perplexity of these methods only (empty: all)
  bool json = false;
  // Task accuracy instead of perplexity (eval-moe --tasks).
  TaskSpec tasks{"", {}, "", -1, {}};
  eval::EvalOptions task_eval;
};

std::pair<std::string, std::string> split_spec(const std::string& s) {
  size_t eq = s.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == s.size()) fail("'", s, "': expected NAME=FILE");
  return {s.substr(0, eq), s.substr(eq + 1)};
}

std::string num(double v, const char* f = "%.3f") {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

void run_eval_moe(const EvalMoeOptions& o) {
  for (double d : o.densities)
    if (!(d > 0 && d <= 1)) fail("density ", d, " is outside (0, 1]");
  std::vector<Method> methods;  // the ones to evaluate, in kMethods' order
  for (const std::string& name : o.methods)
    if (std::none_of(kMethods.begin(), kMethods.end(), [&](const Method& m) { return m.name == name; })) {
      std::string known;
      for (const Method& m : kMethods) known += (known.empty() ? "" : ", ") + m.name;
      fail("unknown method '", name, "' (expected ", known, ")");
    }
  for (const Method& m : kMethods)
    if (o.methods.empty() || std::find(o.methods.begin(), o.methods.end(), m.name) != o.methods.end()) methods.push_back(m);
  const bool task_mode = !o.tasks.tasks.empty() || !o.tasks.task_files.empty();
  if (o.tests.empty() && !task_mode) fail("give at least one --test NAME=FILE, or --tasks");
  std::vector<LoadedTask> tasks;
  if (task_mode) tasks = load_tasks(o.tasks);  // bad task input fails before any model work
  CalibStats stats = load_calib_stats(o.stats);
  auto model = load(o.model);
  refuse_mode_model(*model, "Free-MoE domain experts");
  stats.check_model(*model);
  MethodContext ctx;
  ctx.compensation = parse_compensation(o.compensation, stats);
  if (ctx.compensation == Compensation::LeastSquares) ctx.pooled_gram = pooled_gram(stats);
  ctx.widths = parse_layer_widths(o.layer_widths, ctx.compensation);
  ctx.refit_damp = o.refit_damp;
  ctx.router = o.router;
  ThreadPool pool(o.model.threads);
  ctx.sequential = parse_refit(o.quality.refit_name(), ctx.compensation, stats);
  ctx.refit_target = parse_refit_target(o.quality.refit_target);
  ctx.obs_select = parse_neuron_select(o.quality.select_name(), ctx.compensation);
  ctx.shared_fraction = o.shared_fraction;
  if (!(o.shared_fraction >= 0.0 && o.shared_fraction <= 1.0)) fail("shared fraction ", o.shared_fraction, " is outside [0, 1]");
  ctx.refit_tokens = o.quality.refit_tokens;
  {
    BuildOptions b;
    b.sequential = ctx.sequential;
    apply_refit_rows(o.quality, b);
    ctx.refit_rows = b.refit_rows, ctx.refit_rounds = b.refit_rounds, ctx.row_refit = b.row_refit;
  }
  ctx.pool = &pool;
  std::filesystem::create_directories(o.out_dir);
  // Built experts are kept here until the run ends, so that the same command run again resumes
  // an interrupted one; each build's key adds its method and density.
  ctx.checkpoint_dir = o.out_dir + "/checkpoint";
  ctx.checkpoint_key = o.checkpoint_key(*model);
  const int K = o.subdomains;
  if (task_mode) {
    TaskProtocolOptions tp;
    tp.tasks = std::move(tasks);
    tp.eval = o.task_eval;
    tp.eval.shots = o.tasks.shots;
    tp.densities = o.densities;
    tp.subdomains = K;
    tp.methods = methods;
    tp.bench_reps = o.bench_reps;
    tp.out_dir = o.out_dir;
    tp.model_label = o.model.model;
    run_task_protocol(*model, stats, ctx, tp, pool);
    ExpertCheckpoint(ctx.checkpoint_dir, "").remove();
    return;
  }

  // Held-out text per calibrated domain, and optional unseen domains.
  struct TestSet {
    std::string name;
    int domain;  // index into stats.domains, -1 if unseen
    std::vector<int32_t> tokens;
  };
  std::vector<TestSet> tests;
  for (const std::string& s : o.tests) {
    auto [name, file] = split_spec(s);
    int d = stats.domain_index(name);
    if (d < 0) fail("--test domain '", name, "' was not calibrated (stats have: ", [&] {
      std::string n;
      for (auto& x : stats.domains) n += (n.empty() ? "" : ", ") + x.name;
      return n;
    }(), ")");
    tests.push_back({name, d, tokenize_corpus(*model, {file}, o.max_tokens)});
  }
  for (const std::string& s : o.unseen) {
    auto [name, file] = split_spec(s);
    tests.push_back({name, -1, tokenize_corpus(*model, {file}, o.max_tokens)});
  }
  for (const TestSet& t : tests)
    if (int64_t(t.tokens.size()) < o.ctx) fail("test text for '", t.name, "' has ", t.tokens.size(), " tokens, fewer than --ctx ", o.ctx);

  auto t_start = std::chrono::steady_clock::now();
  nlohmann::json report;
  // ---- Perplexity: dense, then every method at every density.
  std::map<std::string, std::map<std::string, std::map<double, double>>> ppl;  // test -> method -> density -> ppl
  std::map<std::string, double> dense_ppl;
  const int n_evals = o.router_only ? 0 : int(tests.size()) * (1 + int(methods.size() * o.densities.size()));
  Progress progress("eval-moe perplexity", n_evals);
  int done = 0;
  for (const TestSet& t : tests) {
    if (o.router_only) break;
    dense_ppl[t.name] = compute_perplexity(*model, t.tokens, o.ctx, pool).ppl;
    progress.update(++done);
  }
  std::map<std::string, std::map<double, int64_t>> method_bytes;  // bytes of one expert's FFN
  for (double density : o.densities) {
    if (o.router_only) break;
    // neurons and neurons-routed evaluate the same experts: build them once per density.
    std::map<std::string, Built> built;
    for (const Method& m : methods) {
      const std::string key = m.name == "neurons-routed" ? "neurons" : m.name;
      if (!built.count(key)) {  // the builds can take minutes: say which one runs
        const std::string what = "building " + key + "@" + num(density, "%.2f");
        progress.update(done, what);
        built[key] = build_method(*model, stats, ctx, key, density, K, [&](const BuildProgress& p) {
          progress.update(done, what + ": " + build_progress_text(p));
        });
        if (!built[key].parts.checkpoint_error.empty())
          std::fprintf(stderr, "\nwarning: %s not kept for a resume: %s\n", what.c_str(),
                       built[key].parts.checkpoint_error.c_str());
      }
      const Built& b = built[key];
      method_bytes[m.name][density] = b.parts.experts[0].ffn_bytes();
      for (const TestSet& t : tests) {
        if (t.domain < 0 && !m.routed && m.per_domain) {  // unseen text: only routed or domain-agnostic methods apply
          progress.update(++done);
          continue;
        }
        WindowLayers layers = [&](std::span<const int32_t> window) -> const std::vector<LayerWeights>* {
          if (!m.per_domain) return &b.parts.experts[0].layers;
          std::span<const int32_t> head = window.first(std::min<size_t>(window.size(), 64));
          std::vector<float> emb = sequence_embedding(*model, head, b.parts.router.embed_layers, pool);
          int d = t.domain;
          if (m.routed) d = b.parts.router.route(emb.data()).domain;
          const Router& r = b.parts.router;
          int s = nearest_centroid(emb.data(), r.centroids.data() + size_t(d) * K * r.dim, K, r.dim);
          return &b.parts.experts[size_t(d) * K + s].layers;
        };
        ppl[t.name][m.name][density] = compute_perplexity(*model, t.tokens, o.ctx, pool, {}, layers).ppl;
        progress.update(++done);
      }
    }
  }
  progress.finish();

  // ---- Router accuracy on held-out prompts of several lengths.
  std::vector<std::vector<int>> unused;
  RouterTrainReport router_report;
  Router router = train_router(stats, K, o.router, &unused, &router_report);
  const int D = int(stats.domains.size());
  nlohmann::json router_json = nlohmann::json::object();
  router_json["training"] = router_report_json(router_report, o.router);
  std::string confusion_csv = "prompt_tokens,true_domain";
  for (const DomainStats& d : stats.domains) confusion_csv += "," + d.name;
  confusion_csv += "\n";
  for (int len : o.prompt_lengths) {
    std::vector<std::vector<int64_t>> confusion(D, std::vector<int64_t>(D, 0));
    int64_t correct = 0, total = 0;
    for (const TestSet& t : tests) {
      if (t.domain < 0 || int64_t(t.tokens.size()) < len) continue;
      const int64_t span = int64_t(t.tokens.size()) - len;
      for (int i = 0; i < o.router_prompts; ++i) {
        int64_t off = span * i / std::max(1, o.router_prompts);
        std::vector<float> emb =
            sequence_embedding(*model, std::span<const int32_t>(t.tokens.data() + off, size_t(len)), router.embed_layers, pool);
        int pred = router.route(emb.data()).domain;
        confusion[t.domain][pred]++;
        correct += pred == t.domain;
        ++total;
      }
    }
    double acc = total ? double(correct) / double(total) : 0;
    router_json[std::to_string(len)] = {{"accuracy", acc}, {"prompts", total}, {"confusion", confusion}};
    for (int a = 0; a < D; ++a) {
      confusion_csv += std::to_string(len) + "," + stats.domains[a].name;
      for (int b = 0; b < D; ++b) confusion_csv += "," + std::to_string(confusion[a][b]);
      confusion_csv += "\n";
    }
  }

  std::string router_md = "## Router accuracy (held-out prompts)\n\n| prompt tokens | accuracy | prompts |\n|---|---|---|\n";
  for (int len : o.prompt_lengths) {
    const auto& r = router_json[std::to_string(len)];
    router_md += "| " + std::to_string(len) + " | " + num(100.0 * r["accuracy"].get<double>(), "%.1f%%") + " | " +
                 std::to_string(r["prompts"].get<int64_t>()) + " |\n";
  }
  router_md += "\nTrained on the calibration samples: " + router_report_line(router_report, o.router) + ".\n";
  router_md += "\nConfusion matrices (rows: true domain, columns: routed domain): `router_confusion.csv`.\n\n";
  if (o.router_only) {
    report["router"] = router_json;
    write_text_atomic(o.out_dir + "/router_confusion.csv", confusion_csv);
    write_text_atomic(o.out_dir + "/results.json", report.dump(2) + "\n");
    std::string md = "# moeforge eval-moe --router-only\n\nModel `" + o.model.model + "`, stats `" + o.stats + "`.\n\n" + router_md;
    write_text_atomic(o.out_dir + "/results.md", md);
    if (o.json) std::printf("%s\n", dump_json(report).c_str());
    else std::printf("%s", md.c_str());
    return;
  }

  // ---- Speed and memory: dense against one domain expert per density, interleaved.
  std::vector<Built> speed_built;
  std::vector<std::string> speed_names = {"dense"};
  std::vector<const std::vector<LayerWeights>*> configs = {nullptr};
  speed_built.reserve(o.densities.size() + 1);
  MethodContext shapes = ctx;  // speed depends on the layers' widths, not on re-fitted values
  shapes.sequential = false;
  shapes.refit_rows = RefitRows::Down;
  shapes.checkpoint_dir.clear();  // other experts than the evaluated ones of the same name: never kept
  for (double density : o.densities) {
    speed_built.push_back(build_method(*model, stats, shapes, "agnostic", density, 1));  // a domain expert's bytes per token
    configs.push_back(&speed_built.back().parts.experts[0].layers);
    speed_names.push_back("neurons@" + num(density, "%.2f"));
  }
  speed_built.push_back(build_method(*model, stats, shapes, "wanda", o.densities[o.densities.size() / 2], 1));
  configs.push_back(&speed_built.back().parts.experts[0].layers);
  speed_names.push_back("dowp@" + num(o.densities[o.densities.size() / 2], "%.2f"));
  ThroughputOptions to;
  to.reps = o.bench_reps;
  Progress bench_progress("eval-moe speed", o.bench_reps + 1);
  std::vector<Throughput> speed = measure_throughput(*model, configs, to, pool, [&](int d, int) { bench_progress.update(d); });
  bench_progress.finish();

  // ---- Report.
  int64_t dense_bytes = decode_weight_bytes(*model);
  auto matmul_flops = [&](const std::vector<LayerWeights>* layers) {  // 2 * multiply-adds per decoded token
    int64_t p = model->w.output.numel();
    for (const LayerWeights& l : layers ? *layers : model->w.layers)
      for (const TensorView* t : {&l.wq, &l.wk, &l.wv, &l.wo, &l.ffn_gate, &l.ffn_up, &l.ffn_down}) p += t->numel();
    return 2 * p;
  };
  std::string md = "# moeforge eval-moe\n\nModel `" + o.model.model + "`, stats `" + o.stats + "`, " + std::to_string(K) +
                   " sub-domain(s) per domain, perplexity windows of " + std::to_string(o.ctx) + " tokens, at most " +
                   std::to_string(o.max_tokens) + " test tokens per domain. Structured experts: " +
                   (ctx.compensation == Compensation::LeastSquares ? "least-squares"
                    : ctx.compensation == Compensation::Mean       ? "mean"
                                                                   : "no") +
                   (ctx.sequential ? " (sequential re-fit toward the " + o.quality.refit_target + " target over " + std::to_string(ctx.refit_tokens) + " tokens, re-fitting the " + refit_rows_name(ctx.refit_rows) + " rows)" : "") +
                   (ctx.shared_fraction > 0 ? ", shared fraction " + std::to_string(ctx.shared_fraction) : "") +
                   " compensation, " + (ctx.widths == LayerWidths::Uniform ? std::string("uniform layer widths") : std::string("layer widths by ") + (ctx.widths == LayerWidths::ByError ? "" : "relative ") + "re-fit error") +
                   ", domain experts' neurons chosen " + (ctx.obs_select ? "by OBS" : "by score") +
                   ".\n\n## Perplexity (lower is better)\n\n";
  std::string csv = "test,method,density,ppl,dense_ppl\n";
  md += "| test | density | dense |";
  for (const Method& m : methods) md += " " + m.name + " |";
  md += "\n|---|---|---|";
  for (size_t i = 0; i < methods.size(); ++i) md += "---|";
  md += "\n";
  for (const TestSet& t : tests) {
    std::vector<ChartSeries> series;
    for (const Method& m : methods) {
      ChartSeries s{m.name, {}, {}, !m.per_domain};
      for (double density : o.densities) {
        auto it = ppl[t.name][m.name].find(density);
        if (it == ppl[t.name][m.name].end()) continue;
        s.x.push_back(density), s.y.push_back(it->second);
        csv += t.name + "," + m.name + "," + num(density, "%.2f") + "," + num(it->second, "%.4f") + "," + num(dense_ppl[t.name], "%.4f") + "\n";
      }
      if (!s.x.empty()) series.push_back(s);
    }
    series.push_back({"dense", {o.densities.front(), o.densities.back()}, {dense_ppl[t.name], dense_ppl[t.name]}, true});
    write_text_atomic(o.out_dir + "/ppl_" + t.name + ".svg",
               svg_line_chart("perplexity on " + t.name + (t.domain < 0 ? " (unseen)" : ""), "FFN density", "perplexity", series));
    for (double density : o.densities) {
      md += "| " + t.name + (t.domain < 0 ? " (unseen)" : "") + " | " + num(density, "%.2f") + " | " + num(dense_ppl[t.name], "%.2f") + " |";
      for (const Method& m : methods) {
        auto it = ppl[t.name][m.name].find(density);
        md += it == ppl[t.name][m.name].end() ? " - |" : " " + num(it->second, "%.2f") + " |";
      }
      md += "\n";
    }
  }
  md += "\nMethods:\n";
  for (const Method& m : methods) md += "- `" + m.name + "`: " + m.description + "\n";
  md += "\nPlots: `ppl_<test>.svg`. All figures: `perplexity.csv`.\n\n" + router_md;
  md += "## Speed, memory, FLOPs (one expert against dense, same engine, medians of " + std::to_string(o.bench_reps) +
        " interleaved runs, " + std::to_string(pool.size()) + " threads)\n\n";
  md += "| config | decode tok/s | prefill tok/s | decode speed-up | bound (weight bytes) | speed-up / bound | weight bytes/token | matmul FLOPs/token |\n|---|---|---|---|---|---|---|---|\n";
  std::string speed_csv = "config,decode_tps,prefill_tps,decode_speedup,prefill_speedup,bound,weight_bytes,flops\n";
  nlohmann::json speed_json = nlohmann::json::array();
  for (size_t c = 0; c < configs.size(); ++c) {
    double su = speed[c].decode_tps / speed[0].decode_tps, psu = speed[c].prefill_tps / speed[0].prefill_tps;
    double bound = double(dense_bytes) / double(speed[c].decode_weight_bytes);
    // dowp keeps dense shapes: its bound is 1 (zeros are still read).
    md += "| " + speed_names[c] + " | " + num(speed[c].decode_tps, "%.1f") + " | " + num(speed[c].prefill_tps, "%.1f") + " | " +
          num(su, "%.3fx") + " | " + num(bound, "%.3fx") + " | " + num(su / bound, "%.3f") + " | " +
          std::to_string(speed[c].decode_weight_bytes) + " | " + std::to_string(matmul_flops(configs[c])) + " |\n";
    speed_csv += speed_names[c] + "," + num(speed[c].decode_tps, "%.2f") + "," + num(speed[c].prefill_tps, "%.2f") + "," +
                 num(su, "%.4f") + "," + num(psu, "%.4f") + "," + num(bound, "%.4f") + "," +
                 std::to_string(speed[c].decode_weight_bytes) + "," + std::to_string(matmul_flops(configs[c])) + "\n";
    speed_json.push_back({{"config", speed_names[c]}, {"decode_tps", speed[c].decode_tps}, {"prefill_tps", speed[c].prefill_tps},
                          {"decode_speedup", su}, {"prefill_speedup", psu}, {"bound", bound},
                          {"weight_bytes", speed[c].decode_weight_bytes}, {"flops", matmul_flops(configs[c])}});
  }
  const int64_t dense_ffn = ffn_weight_bytes(model->w.layers);
  md += "\n## Memory of the experts (all " + std::to_string(D * K) + " experts, copies of their FFN weights)\n\n";
  md += "| method | density | one expert (MB) | all experts (MB) | overhead vs dense weights |\n|---|---|---|---|---|\n";
  for (const std::string name : {"neurons", "dowp"})
    for (double density : o.densities) {
      if (!method_bytes[name].count(density)) continue;  // not evaluated (--methods)
      int64_t one = method_bytes[name][density], all = one * D * K;
      md += "| " + name + " | " + num(density, "%.2f") + " | " + num(one / 1e6, "%.3f") + " | " + num(all / 1e6, "%.3f") + " | +" +
            num(100.0 * double(all) / double(dense_bytes), "%.0f%%") + " |\n";
    }
  md += "\nDense weights: " + num(dense_bytes / 1e6, "%.3f") + " MB, of which FFN " + num(dense_ffn / 1e6, "%.3f") + " MB.\n";
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  md += "\nEvaluation took " + num(secs, "%.0f") + " s.\n";

  report["dense_ppl"] = dense_ppl;
  for (auto& [test, methods] : ppl)
    for (auto& [method, by_density] : methods)
      for (auto& [density, value] : by_density) report["ppl"][test][method][num(density, "%.2f")] = value;
  report["router"] = router_json;
  report["speed"] = speed_json;
  report["seconds"] = secs;
  write_text_atomic(o.out_dir + "/perplexity.csv", csv);
  write_text_atomic(o.out_dir + "/router_confusion.csv", confusion_csv);
  write_text_atomic(o.out_dir + "/speed.csv", speed_csv);
  write_text_atomic(o.out_dir + "/results.json", report.dump(2) + "\n");
  write_text_atomic(o.out_dir + "/results.md", md);
  ExpertCheckpoint(ctx.checkpoint_dir, "").remove();
  if (o.json) std::printf("%s\n", dump_json(report).c_str());
  else std::printf("%s", md.c_str());
}

}  // namespace

void add_eval_moe(CLI::App& app) {
  auto o = std::make_shared<EvalMoeOptions>();
  CLI::App* cmd = app.add_subcommand(
      "eval-moe",
      "Evaluate domain experts on held-out text: perplexity per domain of dense, neurons and dowp experts and\n"
      "same-density baselines (random, magnitude, domain-agnostic, Wanda), router accuracy and confusion,\n"
      "speed and memory. Writes results.md, CSVs, results.json and one SVG plot per test set to --out");
  add_model_options(cmd, o->model);
  cmd->add_option("-s,--stats", o->stats, "Statistics file from moeforge calibrate on this model")->required();
  cmd->add_option("--test", o->tests, "NAME=FILE held-out text of a calibrated domain (repeat; perplexity protocol)");
  cmd->add_option("--unseen", o->unseen, "NAME=FILE text of a domain that was not calibrated (generalisation)");
  cmd->add_option("--densities", o->densities, "FFN densities")->delimiter(',');
  cmd->add_option("--subdomains", o->subdomains, "Sub-domains per domain")->check(CLI::Range(1, 256));
  cmd->add_option("-c,--ctx", o->ctx, "Perplexity window in tokens")->check(CLI::Range(2, 1 << 20));
  cmd->add_option("--max-tokens", o->max_tokens, "Test tokens per domain")->check(CLI::PositiveNumber);
  cmd->add_option("--router-prompts", o->router_prompts, "Held-out prompts per domain and length")->check(CLI::PositiveNumber);
  cmd->add_option("--prompt-lengths", o->prompt_lengths, "Prompt lengths for router accuracy")->delimiter(',');
  cmd->add_option("--bench-reps", o->bench_reps, "Speed repetitions")->check(CLI::PositiveNumber);
  cmd->add_option("-o,--out", o->out_dir,
                  "Output directory. While the run lasts it also keeps the experts built so far in OUT/checkpoint/:\n"
                  "the same command run again resumes an interrupted run from them")
      ->required();
  cmd->add_option("--compensation", o->compensation,
                  "Structured methods' compensation: auto (lsq with Gram matrices, else mean), lsq, mean or none");
  cmd->add_option("--refit-damp", o->refit_damp, "lsq: ridge as a fraction of the mean kept second moment")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--shared-fraction", o->shared_fraction,
                  "neurons: part of each expert's neurons chosen from all domains pooled (always-on set)");
  add_expert_quality_options(cmd, o->quality);
  cmd->add_option("--layer-widths", o->layer_widths,
                  "Domain and agnostic experts' neurons per layer: uniform, error (the split of the same total that\n"
                  "minimises the summed re-fit error; needs lsq compensation), relative (each layer's error as a\n"
                  "fraction of its FFN output energy), or auto = error with lsq");
  add_router_train_options(cmd, o->router);
  cmd->add_option("--methods", o->methods,
                  "Evaluate the perplexity of only these methods (default: all): neurons, neurons-routed, dowp,\n"
                  "agnostic, magnitude, random, wanda (comma-separated or repeated)")
      ->delimiter(',');
  cmd->add_flag("--router-only", o->router_only, "Only train the router and measure its accuracy (no perplexity or speed)");
  cmd->add_flag("--json", o->json, "Print results.json to stdout instead of the markdown");
  cmd->add_option("--tasks", o->tasks.tasks,
                  "Task accuracy instead of perplexity (see moeforge eval --tasks): dense, the routed MoE, each\n"
                  "forced expert and the baselines at each density; writes summary.md, report.html and runs/");
  cmd->add_option("--task-file", o->tasks.task_files, "NAME=FILE multiple-choice JSONL task (with --tasks mode; repeatable)");
  cmd->add_option("--data", o->tasks.data, "Task data directory (default: $MOEFORGE_EVAL_DATA, else ../shared/data/eval)");
  cmd->add_option("--shots", o->tasks.shots, "Few-shot examples (default: each task's)")->check(CLI::Range(0, 64));
  cmd->add_option("--limit", o->tasks.limits,
                  "Tasks: N or TASK=N (repeatable), the first N documents of every task or of one (of each MMLU subject)");
  cmd->add_option("--batch", o->task_eval.batch_slots, "Tasks: sequences per forward step")->check(CLI::Range(1, 256));
  cmd->callback([o, cmd] {
    o->checkpoint_key = [o, cmd](const Model& m) {
      return expert_checkpoint_key(*cmd, o->stats, m, {"methods", "densities"});  // named by each build's key
    };
    run_eval_moe(*o);
  });
}

}  // namespace mf::cli
