// What `eval` and `eval-moe --tasks` share: reading the task list (validated before any model
// work), running every task under one routing, and the result as JSON (the schema eval-report
// reads: {"label", ..., "tasks": {name: {kind, n, shots, metrics, groups, routes, ...}}}).
#pragma once
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/evaluator.h"

namespace mf::cli {

struct TaskSpec {
  std::string tasks;                    // "arc_easy,piqa,mmlu,mmlu_<subject>,gsm8k,wikitext"
  std::vector<std::string> task_files;  // NAME=FILE multiple-choice JSONL
  std::string data;                     // "" : $MOEFORGE_EVAL_DATA, else ../shared/data/eval
  int shots = -1;                       // checked against every few-shot pool
  std::vector<std::string> limits;      // "N" (every task) or "NAME=N": the first N documents (per MMLU subject)
};

struct LoadedTask {
  std::string name;
  std::optional<eval::McTask> mc;
  std::optional<eval::GenTask> gen;
  std::string text;  // WikiText
  int64_t limit = 0;  // the first N documents (of each MMLU subject); 0: all
};

// Throws mf::Error on an unknown task, a bad file or too few few-shot examples.
std::vector<LoadedTask> load_tasks(const TaskSpec& spec);

// Runs every task; appends one JSON line per document to records when not null. Prints a
// progress bar per task unless quiet, and a summary line per task unless silent.
nlohmann::json run_tasks(const Model& model, ThreadPool& pool, const std::vector<LoadedTask>& tasks,
                         const eval::EvalOptions& options, const eval::PromptRouter& route, bool quiet,
                         bool silent, std::string* records);

nlohmann::json task_result_json(const eval::TaskResult& r);

}  // namespace mf::cli
