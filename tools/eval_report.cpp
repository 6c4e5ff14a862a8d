#include "tools/eval_report.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>

#include "core/error.h"
#include "tools/common.h"
#include "tools/svg_chart.h"

namespace mf::cli {

namespace {

std::string num(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

std::string html_escape(const std::string& s) {
  std::string o;
  for (char c : s) o += c == '<' ? "&lt;" : c == '>' ? "&gt;" : c == '&' ? "&amp;" : std::string(1, c);
  return o;
}

// A table as rows of cells; the first row is the header.
using Table = std::vector<std::vector<std::string>>;

std::string markdown(const Table& t) {
  std::string o;
  for (size_t r = 0; r < t.size(); ++r) {
    o += "|";
    for (const std::string& c : t[r]) o += " " + c + " |";
    o += "\n";
    if (r == 0) {
      o += "|";
      for (size_t c = 0; c < t[r].size(); ++c) o += c ? "---:|" : "---|";
      o += "\n";
    }
  }
  return o;
}

std::string html(const Table& t) {
  std::string o = "<table>\n";
  for (size_t r = 0; r < t.size(); ++r) {
    o += "<tr>";
    for (const std::string& c : t[r]) o += (r ? "<td>" : "<th>") + html_escape(c) + (r ? "</td>" : "</th>");
    o += "</tr>\n";
  }
  return o + "</table>\n";
}

std::string label_of(const nlohmann::json& run) { return run.value("label", run.value("model", std::string("?"))); }

// Mean accuracy over the run's multiple-choice tasks (NaN without any).
double mean_mc_accuracy(const nlohmann::json& run) {
  double sum = 0;
  int n = 0;
  for (const auto& [name, t] : run["tasks"].items())
    if (t.value("kind", "") == "multiple_choice") sum += t["metrics"]["acc"]["value"].get<double>(), ++n;
  return n ? sum / n : NAN;
}

}  // namespace

std::pair<std::string, double> headline_metric(const nlohmann::json& task) {
  const std::string kind = task.value("kind", "");
  const char* key = kind == "multiple_choice" ? "acc" : kind == "generate_until" ? "exact_match_flexible" : "bits_per_byte";
  return {key, task["metrics"][key]["value"].get<double>()};
}

void write_eval_report(const std::vector<nlohmann::json>& runs, const std::string& dir) {
  if (runs.empty()) fail("a report needs at least one eval result");
  std::vector<std::string> tasks;  // in first-seen order
  std::set<std::string> seen;
  for (const nlohmann::json& run : runs) {
    if (!run.is_object() || !run.contains("tasks") || !run["tasks"].is_object())
      fail("not a moeforge eval result (no \"tasks\" object): ", run.dump().substr(0, 80));
    for (const auto& [name, t] : run["tasks"].items()) {
      if (!t.contains("metrics") || !t.contains("kind")) fail("eval result task '", name, "' has no metrics or kind");
      if (seen.insert(name).second) tasks.push_back(name);
    }
  }
  // Main table: one row per run.
  Table main{{"run"}};
  for (const std::string& t : tasks) main[0].push_back(t);
  for (const char* h : {"MC mean", "FFN density", "decode tok/s", "weights/token MB"}) main[0].push_back(h);
  for (const nlohmann::json& run : runs) {
    std::vector<std::string> row{label_of(run)};
    for (const std::string& t : tasks) {
      if (!run["tasks"].contains(t)) { row.push_back("-"); continue; }
      const nlohmann::json& tj = run["tasks"][t];
      const auto [key, v] = headline_metric(tj);
      const double se = tj["metrics"][key].value("stderr", 0.0);
      row.push_back(key == "bits_per_byte" ? num("%.4f bpb", v) : num("%.2f", 100 * v) + (se > 0 ? num(" ± %.2f", 100 * se) : ""));
    }
    const double mc = mean_mc_accuracy(run);
    row.push_back(std::isfinite(mc) ? num("%.2f", 100 * mc) : "-");
    row.push_back(run.contains("density") && run["density"].is_number() ? num("%.2f", run["density"].get<double>()) : "-");
    row.push_back(run.contains("decode_tps") && run["decode_tps"].is_number() ? num("%.1f", run["decode_tps"].get<double>()) : "-");
    row.push_back(run.contains("decode_weight_bytes") && run["decode_weight_bytes"].is_number()
                      ? num("%.1f", run["decode_weight_bytes"].get<double>() / 1e6) : "-");
    main.push_back(row);
  }
  // MMLU categories, where measured.
  Table mmlu{{"run", "stem", "humanities", "social_sciences", "other", "macro (57 subjects)", "overall"}};
  for (const nlohmann::json& run : runs)
    for (const std::string task : {"mmlu", "mmlu_continuation"}) {
      if (!run["tasks"].contains(task)) continue;
      const nlohmann::json& m = run["tasks"][task];
      std::vector<std::string> row{label_of(run) + (task == "mmlu" ? "" : " (continuation)")};
      for (const char* g : {"stem", "humanities", "social_sciences", "other", "macro"})
        row.push_back(m["groups"].contains(g) ? num("%.2f", 100 * m["groups"][g]["value"].get<double>()) : "-");
      row.push_back(num("%.2f", 100 * m["metrics"]["acc"]["value"].get<double>()));
      mmlu.push_back(row);
    }
  // Where documents went.
  Table routes{{"run", "task", "documents per expert"}};
  for (const nlohmann::json& run : runs)
    for (const auto& [name, t] : run["tasks"].items()) {
      std::string cell;
      const nlohmann::json routes_of = t.value("routes", nlohmann::json::object());
      for (const auto& [e, n] : routes_of.items())
        cell += (cell.empty() ? "" : ", ") + e + " " + std::to_string(n.get<int64_t>());
      routes.push_back({label_of(run), name, cell});
    }

  // Plots.
  std::vector<BarSeries> bars;
  for (const nlohmann::json& run : runs) {
    BarSeries b{label_of(run), {}};
    for (const std::string& t : tasks)
      b.values.push_back(run["tasks"].contains(t) && run["tasks"][t]["kind"] != "loglikelihood_rolling"
                             ? 100 * headline_metric(run["tasks"][t]).second : NAN);
    bars.push_back(b);
  }
  const std::string per_task = svg_bar_chart("Accuracy per task", "accuracy %", tasks, bars);
  std::vector<ChartSeries> by_density, by_speed;
  for (const nlohmann::json& run : runs) {
    const double mc = mean_mc_accuracy(run);
    const double density = run.contains("density") && run["density"].is_number() ? run["density"].get<double>() : 1.0;
    ChartSeries s{label_of(run), {density}, {100 * mc}, false, true};
    by_density.push_back(s);
    if (run.contains("decode_tps") && run["decode_tps"].is_number())
      by_speed.push_back(ChartSeries{label_of(run), {run["decode_tps"].get<double>()}, {100 * mc}, false, true});
  }
  const std::string density_plot = svg_line_chart("Mean multiple-choice accuracy against FFN density", "FFN density",
                                                  "accuracy %", by_density);
  const std::string speed_plot = by_speed.empty() ? ""
      : svg_line_chart("Mean multiple-choice accuracy against decode speed", "decode tokens/s", "accuracy %", by_speed);

  std::string md = "# moeforge eval report\n\nAccuracy in % (± standard error); WikiText in bits per byte. "
                   "\"MC mean\" averages the multiple-choice tasks.\n\n" + markdown(main);
  if (mmlu.size() > 1) md += "\n## MMLU by category\n\n" + markdown(mmlu);
  md += "\n## Routing\n\n" + markdown(routes);
  md += "\nPlots: report.html.\n";
  std::string page = "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>moeforge eval report</title>\n"
                     "<style>body{font-family:sans-serif;max-width:1000px;margin:2em auto}table{border-collapse:collapse;"
                     "margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child,"
                     "th:first-child{text-align:left}</style></head><body>\n<h1>moeforge eval report</h1>\n"
                     "<p>Accuracy in % (± standard error); WikiText in bits per byte.</p>\n" + html(main);
  if (mmlu.size() > 1) page += "<h2>MMLU by category</h2>\n" + html(mmlu);
  page += "<h2>Plots</h2>\n" + per_task + density_plot + speed_plot;
  page += "<h2>Routing</h2>\n" + html(routes) + "</body></html>\n";
  std::filesystem::create_directories(dir);
  write_text_atomic((std::filesystem::path(dir) / "report.md").string(), md);
  write_text_atomic((std::filesystem::path(dir) / "report.html").string(), page);
}

}  // namespace mf::cli
