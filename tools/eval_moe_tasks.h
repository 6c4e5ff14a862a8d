// eval-moe --tasks: Free-MoE judged by task accuracy. Dense, the routed structured MoE, each
// forced domain expert, routed DOWP and the same-density baselines (domain-agnostic,
// magnitude, random, Wanda) run the same tasks through the eval harness; each row's speed,
// weights read per token and FLOPs are measured in the same engine. Writes one eval result
// per row (runs/*.json), report.md/.html (plots) and summary.md/.json to the output directory.
#pragma once
#include <string>
#include <vector>

#include "tools/eval_moe_methods.h"
#include "tools/eval_runner.h"

namespace mf::cli {

struct TaskProtocolOptions {
  std::vector<LoadedTask> tasks;
  eval::EvalOptions eval;
  std::vector<double> densities;
  int subdomains = 1;
  std::vector<Method> methods;  // which of kMethods (neurons and neurons-routed both give the MoE rows)
  int bench_reps = 3;
  std::string out_dir, model_label;
};

void run_task_protocol(const Model& model, const CalibStats& stats, const MethodContext& ctx,
                       const TaskProtocolOptions& o, ThreadPool& pool);

}  // namespace mf::cli
