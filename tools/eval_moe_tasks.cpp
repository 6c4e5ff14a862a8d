#include "tools/eval_moe_tasks.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>

#include "calib/calibrate.h"
#include "calib/kmeans.h"
#include "core/error.h"
#include "eval/paired_difference.h"
#include "model/throughput.h"
#include "tools/common.h"
#include "tools/eval_report.h"
#include "tools/moe_cli.h"
#include "tools/progress.h"

namespace mf::cli {

namespace {

using nlohmann::json;

std::string num(double v, const char* f = "%.2f") {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

// One row of the comparison: how its documents are routed and what it is.
struct Row {
  std::string label, method;
  double density = 1.0;
  std::string forced_domain;  // a forced domain expert's domain
  eval::PromptRouter route;
  const std::vector<LayerWeights>* speed_layers = nullptr;  // what its speed is measured on
  // The FFNs it keeps in memory: every expert it can route to (dense: the model's own).
  std::vector<const std::vector<LayerWeights>*> resident;
};

// Multiply-adds x2 of the matrices one decoded token runs through.
int64_t matmul_flops(const Model& model, const std::vector<LayerWeights>* layers) {
  int64_t p = model.w.output.numel();
  for (const LayerWeights& l : layers ? *layers : model.w.layers)
    for (const TensorView* t : {&l.wq, &l.wk, &l.wv, &l.wo, &l.ffn_gate, &l.ffn_up, &l.ffn_down}) p += t->numel();
  return 2 * p;
}

int64_t bytes_of(const TensorView& t) { return t.data ? int64_t(t.nbytes()) : 0; }

int64_t ffn_bytes(const std::vector<LayerWeights>& layers) {
  int64_t b = 0;
  for (const LayerWeights& l : layers) b += bytes_of(l.ffn_gate) + bytes_of(l.ffn_up) + bytes_of(l.ffn_down) + bytes_of(l.ffn_down_b);
  return b;
}

// Weight bytes in memory to serve a row: the model's weights outside the FFNs (embeddings,
// head, attention, norms) once, plus the FFN of every layer set the row keeps. Heap copies
// (DOWP's dense-shaped experts) count in full.
int64_t resident_bytes(const Model& model, const std::vector<const std::vector<LayerWeights>*>& ffns) {
  int64_t b = bytes_of(model.w.tok_embd) + bytes_of(model.w.output_norm);
  if (model.w.output.data != model.w.tok_embd.data) b += bytes_of(model.w.output);
  for (const LayerWeights& l : model.w.layers)
    for (const TensorView* t : {&l.attn_norm, &l.wq, &l.wk, &l.wv, &l.wo, &l.bq, &l.bk, &l.bv, &l.bo, &l.q_norm, &l.k_norm,
                                &l.attn_post_norm, &l.ffn_norm, &l.ffn_post_norm})
      b += bytes_of(*t);
  for (const auto* f : ffns) b += ffn_bytes(*f);
  return b;
}

std::string limits_text(const std::vector<LoadedTask>& tasks) {
  std::string s;
  for (const LoadedTask& t : tasks)
    s += (s.empty() ? "" : ", ") + t.name + (t.limit > 0 ? " (first " + std::to_string(t.limit) + (t.name.starts_with("mmlu") ? " per subject)" : ")") : " (all)");
  return s;
}

double mean_mc(const json& tasks) {
  double s = 0;
  int n = 0;
  for (const auto& [name, t] : tasks.items())
    if (t["kind"] == "multiple_choice") s += t["metrics"]["acc"]["value"].get<double>(), ++n;
  return n ? s / n : NAN;
}

}  // namespace

void run_task_protocol(const Model& model, const CalibStats& stats, const MethodContext& ctx, const TaskProtocolOptions& o,
                       ThreadPool& pool) {
  const auto t0 = std::chrono::steady_clock::now();
  const int K = o.subdomains;
  const auto wants = [&](const char* m) {
    for (const Method& x : o.methods)
      if (x.name == m) return true;
    return false;
  };
  // Every method's experts, built first (the builds report their own progress).
  std::map<std::string, std::map<double, Built>> built;
  for (double d : o.densities)
    for (const char* m : {"neurons", "dowp", "agnostic", "magnitude", "random", "wanda"}) {
      const bool want = std::string(m) == "neurons" ? wants("neurons") || wants("neurons-routed") : wants(m);
      if (!want) continue;
      BuildProgressBar p(std::string("building ") + m + "@" + num(d));
      built[m][d] = build_method(model, stats, ctx, m, d, K, [&](const BuildProgress& bp) { p.update(bp); });
      p.finish();
      if (const MoeParts& b = built[m][d].parts; !b.checkpoint_error.empty())
        std::fprintf(stderr, "warning: experts of %s@%s not kept for a resume: %s\n", m, num(d).c_str(),
                     b.checkpoint_error.c_str());
      if (const MoeParts& b = built[m][d].parts; b.resumed)
        std::fprintf(stderr, "resumed: %d of %zu experts of %s@%s read from %s/, built by an interrupted run\n", b.resumed,
                     b.experts.size(), m, num(d).c_str(), ctx.checkpoint_dir.c_str());
    }
  // Routing by a method's router: the domain, then the nearest sub-domain centroid.
  const auto routed = [&](const Built& b, int forced_domain) -> eval::PromptRouter {
    return [&b, forced_domain, K, &model, &pool](std::span<const int32_t> prompt) {
      // A forced domain with one sub-domain needs no embedding (a forward pass over the prompt).
      if (forced_domain >= 0 && K == 1) {
        const Expert& e = b.parts.experts[size_t(forced_domain)];
        return eval::RouteChoice{&e.layers, e.name, nullptr};
      }
      const Router& r = b.parts.router;
      std::vector<float> emb = sequence_embedding(model, prompt, r.embed_layers, pool);  // [dim]
      const int d = forced_domain >= 0 ? forced_domain : r.route(emb.data()).domain;
      const int s = nearest_centroid(emb.data(), r.centroids.data() + size_t(d) * K * r.dim, K, r.dim);
      const Expert& e = b.parts.experts[size_t(d) * K + size_t(s)];
      return eval::RouteChoice{&e.layers, e.name, nullptr};
    };
  };
  std::vector<Row> rows;
  const auto all_experts = [](const Built& b) {
    std::vector<const std::vector<LayerWeights>*> v;
    for (const Expert& e : b.parts.experts) v.push_back(&e.layers);
    return v;
  };
  rows.push_back(Row{"dense", "dense", 1.0, "", [](std::span<const int32_t>) { return eval::RouteChoice{}; }, nullptr,
                     {&model.w.layers}});
  for (double d : o.densities) {
    const std::string at = "@" + num(d);
    if (built.count("neurons")) {
      const Built& b = built["neurons"][d];
      rows.push_back(Row{"moe-routed" + at, "neurons-routed", d, "", routed(b, -1), &b.parts.experts[0].layers, all_experts(b)});
      for (int dom = 0; dom < int(stats.domains.size()); ++dom) {
        std::vector<const std::vector<LayerWeights>*> own;  // the domain's sub-domain experts
        for (int s = 0; s < K; ++s) own.push_back(&b.parts.experts[size_t(dom) * K + size_t(s)].layers);
        rows.push_back(Row{"expert:" + stats.domains[size_t(dom)].name + at, "neurons", d, stats.domains[size_t(dom)].name,
                           routed(b, dom), &b.parts.experts[size_t(dom) * K].layers, own});
      }
    }
    if (built.count("dowp")) {
      const Built& b = built["dowp"][d];
      rows.push_back(Row{"dowp-routed" + at, "dowp", d, "", routed(b, -1), &b.parts.experts[0].layers, all_experts(b)});
    }
    for (const char* m : {"agnostic", "magnitude", "random", "wanda"}) {
      if (!built.count(m)) continue;
      const Expert& e = built[m][d].parts.experts[0];
      rows.push_back(Row{std::string(m) + at, m, d, "",
                         [&e, m](std::span<const int32_t>) { return eval::RouteChoice{&e.layers, m, nullptr}; }, &e.layers,
                         {&e.layers}});
    }
  }
  // Speed of every distinct configuration, interleaved (shared machine noise).
  std::vector<const std::vector<LayerWeights>*> configs;
  std::map<const std::vector<LayerWeights>*, size_t> config_of;
  for (const Row& r : rows)
    if (!config_of.count(r.speed_layers)) config_of[r.speed_layers] = configs.size(), configs.push_back(r.speed_layers);
  ThroughputOptions to;
  to.reps = o.bench_reps;
  Progress bench("speed", o.bench_reps + 1);
  const std::vector<Throughput> speed = measure_throughput(model, configs, to, pool, [&](int d, int) { bench.update(d); });
  bench.finish();

  std::filesystem::create_directories(o.out_dir + "/runs");
  std::vector<json> runs;
  std::vector<std::string> run_records;  // [rows] per-document JSONL
  Progress overall("eval-moe tasks", int64_t(rows.size()));
  for (size_t i = 0; i < rows.size(); ++i) {
    const Row& r = rows[i];
    overall.update(int64_t(i), r.label);
    const Throughput& tp = speed[config_of[r.speed_layers]];
    json run = {{"model", o.model_label}, {"label", r.label}, {"method", r.method}, {"density", r.density},
                {"forced_domain", r.forced_domain}, {"decode_tps", tp.decode_tps}, {"prefill_tps", tp.prefill_tps},
                {"decode_weight_bytes", tp.decode_weight_bytes}, {"flops_per_token", matmul_flops(model, r.speed_layers)},
                {"resident_weight_bytes", resident_bytes(model, r.resident)},
                {"numerics", o.eval.numerics.quantized_acts ? "llama.cpp" : "f32"}};
    std::string records;
    run["tasks"] = run_tasks(model, pool, o.tasks, o.eval, r.route, /*quiet=*/true, /*silent=*/true, &records);
    std::string file = r.label;
    for (char& c : file)
      if (c == ':' || c == '@' || c == '/') c = '_';
    write_text_atomic(o.out_dir + "/runs/" + file + ".json", run.dump(1) + "\n");
    write_text_atomic(o.out_dir + "/runs/" + file + ".records.jsonl", records);
    runs.push_back(run);
    run_records.push_back(std::move(records));
    std::fprintf(stderr, "%-24s MC mean %.2f%%\n", r.label.c_str(), 100 * mean_mc(run["tasks"]));
  }
  overall.finish();
  // Each row against dense on the same documents: paired standard errors (eval/paired_difference.h).
  // A side statistic: if it cannot be computed, say why and report without it.
  std::vector<eval::PairedDifference> paired(runs.size());
  std::vector<bool> has_se(runs.size(), false);
  const bool any_mc = !std::isnan(mean_mc(runs[0]["tasks"]));  // else only generation or perplexity tasks
  for (size_t i = 1; i < runs.size() && any_mc; ++i) {
    try {
      paired[i] = eval::paired_difference(run_records[i], run_records[0], runs[i]["label"].get<std::string>(), "dense");
      has_se[i] = true;
    } catch (const Error& e) {
      std::fprintf(stderr, "warning: no paired standard error for %s: %s\n", runs[i]["label"].get<std::string>().c_str(), e.what());
    }
  }
  auto paired_task = [&](size_t i, const std::string& task) -> const eval::PairedTask* {
    if (!has_se[i]) return nullptr;
    for (const eval::PairedTask& t : paired[i].tasks)
      if (t.task == task) return &t;
    return nullptr;
  };
  write_eval_report(runs, o.out_dir);

  // Summary: each row against dense, per task and on average; speed against its bound.
  const json& dense = runs[0];
  const double dense_tps = dense["decode_tps"].get<double>(), dense_prefill = dense["prefill_tps"].get<double>();
  const double dense_bytes = dense["decode_weight_bytes"].get<double>();
  std::string md = "# Free-MoE by task accuracy\n\nModel `" + o.model_label + "`, " + std::to_string(o.tasks.size()) +
                   " tasks, " + limits_text(o.tasks) +
                   ". Accuracy in %, difference to dense in points (Δ mean ± its standard error, paired over the same documents). Speed: medians of " + std::to_string(o.bench_reps) +
                   " interleaved runs on " + std::to_string(pool.size()) + " threads; bound = dense weight bytes / the row's.\n\n| row |";
  json summary = json::array();
  std::vector<std::string> task_names;
  for (const auto& [name, t] : dense["tasks"].items()) task_names.push_back(name);
  for (const std::string& t : task_names) md += " " + t + " |";
  md += " MC mean | Δ mean | decode speed-up | bound | speed-up / bound | prefill speed-up | weights/token MB | GFLOPs/token"
        " | weights in memory MB |\n|---|";
  for (size_t k = 0; k < task_names.size() + 9; ++k) md += "---:|";
  md += "\n";
  for (size_t i = 0; i < runs.size(); ++i) {
    const json& run = runs[i];
    md += "| " + run["label"].get<std::string>() + " |";
    json row = {{"label", run["label"]}, {"density", run["density"]}};
    for (const std::string& t : task_names) {
      const auto [key, v] = headline_metric(run["tasks"][t]);
      const auto [dkey, dv] = headline_metric(dense["tasks"][t]);
      md += " " + num(100 * v) + (run["label"] == "dense" ? "" : " (" + num(100 * (v - dv), "%+.2f") + ")") + " |";
      row["tasks"][t] = {{key, v}, {"delta", v - dv}};
    }
    const double mc = mean_mc(run["tasks"]), dmc = mean_mc(dense["tasks"]);
    const double su = run["decode_tps"].get<double>() / dense_tps, bound = dense_bytes / run["decode_weight_bytes"].get<double>();
    const double psu = run["prefill_tps"].get<double>() / dense_prefill;
    const std::string se = has_se[i] ? " ± " + num(100 * paired[i].mean_se) : "";
    md += " " + num(100 * mc) + " | " + num(100 * (mc - dmc), "%+.2f") + se + " | " + num(su, "%.3fx") + " | " + num(bound, "%.3fx") +
          " | " + num(su / bound, "%.3f") + " | " + num(psu, "%.3fx") + " | " +
          num(run["decode_weight_bytes"].get<double>() / 1e6, "%.1f") + " | " +
          num(run["flops_per_token"].get<double>() / 1e9, "%.3f") + " | " +
          num(run["resident_weight_bytes"].get<double>() / 1e6, "%.1f") + " |\n";
    row["mc_mean"] = mc, row["delta_mc_mean"] = mc - dmc, row["decode_speedup"] = su, row["bound"] = bound;
    if (has_se[i]) row["delta_mc_mean_se"] = paired[i].mean_se;
    row["prefill_speedup"] = psu, row["resident_weight_bytes"] = run["resident_weight_bytes"];
    summary.push_back(row);
  }
  // Experts on their own domain's task (when a domain is named after a task).
  std::string own;
  for (size_t i = 1; i < runs.size(); ++i) {
    const json& run = runs[i];
    const std::string dom = run.value("forced_domain", "");
    if (dom.empty() || !run["tasks"].contains(dom)) continue;
    const double v = headline_metric(run["tasks"][dom]).second, dv = headline_metric(dense["tasks"][dom]).second;
    const eval::PairedTask* pt = paired_task(i, dom);
    own += "- `" + run["label"].get<std::string>() + "` on " + dom + ": " + num(100 * v) + " vs dense " + num(100 * dv) + " (" +
           num(100 * (v - dv), "%+.2f") + (pt ? " ± " + num(100 * pt->se) : "") +
           (v > dv ? ", beats dense" : ", does not beat dense") +
           (pt ? "; " + std::to_string(pt->a_only) + " documents won, " + std::to_string(pt->b_only) + " lost" : "") + ")\n";
  }
  if (!own.empty()) md += "\n## Each expert on its own domain's task\n\n" + own;
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  md += "\nPer-row results: `runs/*.json`, per-document records `runs/*.records.jsonl`; plots: `report.html`. Took " +
        num(secs, "%.0f") + " s.\n";
  write_text_atomic(o.out_dir + "/summary.md", md);
  write_text_atomic(o.out_dir + "/summary.json", json{{"rows", summary}, {"seconds", secs}}.dump(1) + "\n");
  std::printf("%s", md.c_str());
}

}  // namespace mf::cli
