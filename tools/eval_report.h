// The report of one or several `moeforge eval` runs (their --json output): report.md and a
// self-contained report.html with plots (accuracy per task and run, accuracy against FFN
// density and against decode speed), written atomically into a directory.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace mf::cli {

// Throws mf::Error when a run is not an eval result (before anything is written).
void write_eval_report(const std::vector<nlohmann::json>& runs, const std::string& dir);

// The headline metric of a task result: acc (multiple choice), exact_match_flexible (GSM8K)
// or bits_per_byte (WikiText); with its name.
std::pair<std::string, double> headline_metric(const nlohmann::json& task);

}  // namespace mf::cli
