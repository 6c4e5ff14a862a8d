// moeforge's trainer entry point. No libtorch in this header: the CLI includes it.
#pragma once
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "train/train_config.h"

namespace mf {

struct TrainProgress {
  int step = 0, total_steps = 0;
  double loss = 0, lr = 0, tokens_per_s = 0;
  int64_t tokens_seen = 0;
  std::map<std::string, double> valid_loss;  // filled at evaluation steps
  std::string phase;                         // "tokenizing", "training", "eval", "export"
};

struct TrainRunOptions {
  bool resume = true;    // continue from OUT/checkpoint.pt when present
  int stop_after = -1;   // stop (with a checkpoint) after this step, as if interrupted; -1: run to the end
  std::function<void(const TrainProgress&)> on_progress;
  // Data-parallel: each rank trains cfg.batch_size rows of a global batch of world_size times
  // that, gradients averaged over the ranks; rank 0 alone writes OUT (every rank resumes from
  // OUT/checkpoint.pt when present).
  DistOptions dist;
};

struct TrainResult {
  std::vector<double> train_losses;  // one per step run in this call, in order
  int first_step = 0;                // step number of train_losses[0]
  std::map<std::string, double> final_valid_loss;
  bool finished = false;             // reached cfg.steps and exported
  double trainability_seconds = 0;   // wall-clock of the MO-CTE trainability checks in this call
  double clustering_seconds = 0;     // and of its SVD + k-means clusterings
};

// Trains per cfg and writes OUT/: checkpoint.pt, train_log.csv and, when finished, a Hugging
// Face layout (config.json, model.safetensors, tokenizer.json, tokenizer_config.json).
// Bad config or data fail with mf::Error before OUT is created.
TrainResult run_training(const TrainConfig& cfg, const std::string& out_dir, const TrainRunOptions& opts = {});

}  // namespace mf
