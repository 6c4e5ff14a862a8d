#include "eval/paired_difference.h"

#include <cmath>
#include <map>
#include <sstream>
#include <utility>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace mf::eval {

namespace {

using Scores = std::map<std::pair<std::string, std::string>, double>;  // (task, id) -> acc

Scores read_scores(const std::string& records, const std::string& what) {
  Scores s;
  std::istringstream in(records);
  std::string line;
  for (int64_t no = 1; std::getline(in, line); ++no) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json r = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (r.is_discarded() || !r.is_object()) fail(what, ": line ", no, " is not a JSON object");
    if (!r.contains("acc")) continue;  // a generation or perplexity document
    if (!r.contains("task") || !r["task"].is_string() || !r.contains("id") || !r["id"].is_string() || !r["acc"].is_number())
      fail(what, ": line ", no, " lacks a string task and id or a numeric acc");
    if (!s.emplace(std::make_pair(r["task"].get<std::string>(), r["id"].get<std::string>()), r["acc"].get<double>()).second)
      fail(what, ": document ", r["id"].get<std::string>(), " of task ", r["task"].get<std::string>(), " appears twice");
  }
  return s;
}

}  // namespace

PairedDifference paired_difference(const std::string& records_a, const std::string& records_b, const std::string& what_a,
                                   const std::string& what_b) {
  const Scores a = read_scores(records_a, what_a), b = read_scores(records_b, what_b);
  if (a.empty()) fail(what_a, ": no multiple-choice documents");
  if (a.size() != b.size()) fail(what_a, " scores ", a.size(), " multiple-choice documents, ", what_b, " ", b.size());
  std::map<std::string, std::vector<double>> diffs;  // task -> [n]
  std::map<std::string, PairedTask> tasks;
  for (const auto& [key, acc] : a) {
    const auto it = b.find(key);
    if (it == b.end()) fail(what_b, " has no document ", key.second, " of task ", key.first, " (the runs must score the same documents)");
    diffs[key.first].push_back(acc - it->second);
    PairedTask& t = tasks[key.first];
    t.a_only += acc > it->second;
    t.b_only += it->second > acc;
  }
  PairedDifference out;
  double var = 0;
  for (auto& [name, d] : diffs) {
    PairedTask t = tasks[name];
    t.task = name;
    t.n = int64_t(d.size());
    double sum = 0;
    for (double x : d) sum += x;
    t.diff = sum / double(t.n);
    double ss = 0;
    for (double x : d) ss += (x - t.diff) * (x - t.diff);
    t.se = t.n > 1 ? std::sqrt(ss / double(t.n - 1) / double(t.n)) : 0.0;
    out.mean_diff += t.diff;
    var += t.se * t.se;
    out.tasks.push_back(t);
  }
  const double k = double(out.tasks.size());
  out.mean_diff /= k;
  out.mean_se = std::sqrt(var) / k;
  return out;
}

}  // namespace mf::eval
