// The engine's logits (moeforge logits) for a model the trainer exported, against the
// trainer's own forward: the largest |engine - trainer| / (1e-4 + 1e-4 |trainer|).
#pragma once
#include <torch/torch.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "test_util.h"

namespace mf::test {

// ref: the trainer's logits [T, n_vocab] for ids; > 1 means a difference beyond 1e-4 relative.
// Fails the test (and returns infinity) when the CLI does.
inline double engine_logit_error(const std::string& model_dir, const std::vector<int64_t>& ids, const torch::Tensor& ref) {
  std::string list;
  for (auto id : ids) list += (list.empty() ? "" : ",") + std::to_string(id);
  auto r = run_cli("logits --f32 -m " + model_dir + " --tokens " + list);
  EXPECT_EQ(r.code, 0) << r.err;
  if (r.code != 0) return INFINITY;
  auto got = nlohmann::json::parse(r.out)["logits"];
  double worst = 0;
  for (size_t t = 0; t < ids.size(); ++t)
    for (int64_t v = 0; v < ref.size(1); ++v) {
      const double a = got[t][v].get<double>(), b = ref[int64_t(t)][v].item<double>();
      worst = std::max(worst, std::abs(a - b) / (1e-4 + 1e-4 * std::abs(b)));
    }
  return worst;
}

}  // namespace mf::test
