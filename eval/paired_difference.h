// Paired comparison of two evaluation runs on the same documents: the accuracy difference per
// task with its standard error from the per-document differences, which is far smaller than
// the two accuracies' own errors combined when the runs agree on most documents (an expert
// against its dense model). Multiple-choice tasks only (their records' 0/1 `acc`).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace mf::eval {

struct PairedTask {
  std::string task;
  int64_t n = 0;      // documents in both runs
  double diff = 0;    // mean over documents of acc_a - acc_b
  double se = 0;      // its standard error: sample s.d. of the differences / sqrt(n) (0 when n = 1)
  int64_t a_only = 0, b_only = 0;  // documents only run a (only run b) got right
};

struct PairedDifference {
  std::vector<PairedTask> tasks;  // by task name
  double mean_diff = 0;  // over tasks, each weighted equally (as the MC mean)
  double mean_se = 0;    // sqrt(sum of the tasks' se^2) / tasks
};

// records_a, records_b: per-document JSONL as `eval --records` and `eval-moe` write them (task,
// id, acc). Documents of generation and perplexity tasks (no `acc`) are skipped. Throws
// mf::Error, naming `what_a` / `what_b`, on a malformed line, a document id seen twice, or when
// the two runs do not hold the same multiple-choice documents.
PairedDifference paired_difference(const std::string& records_a, const std::string& records_b,
                                   const std::string& what_a = "run a", const std::string& what_b = "run b");

}  // namespace mf::eval
