// A tiny two-domain training config for the MoE trainer tests: fixture text, the trainer's
// golden-checked tokenizer, a 32-wide 2-layer model with the given "moe" object.
#pragma once
#include <filesystem>
#include <string>

#include "test_util.h"

namespace mf::test {

// Writes DIR/{prose,math}.txt and DIR/config.json; returns the config's path.
inline std::string write_tiny_moe_config(const std::string& dir, const std::string& moe_json, int steps = 16,
                                         int eval_every = 8) {
  std::filesystem::create_directories(dir);
  write_file(dir + "/prose.txt", read_file(shared_dir() + "/data/eval/prose/frankenstein.txt").substr(0, 60000));
  write_file(dir + "/math.txt", read_file(shared_dir() + "/data/eval/gsm8k/train.jsonl").substr(0, 60000));
  write_file(dir + "/config.json", R"({
    "tokenizer": "tests/golden/data/tokenizer/moeforge_bpe/tokenizer.json",
    "train": {"prose": ")" + dir + R"(/prose.txt", "math": ")" + dir + R"(/math.txt"},
    "model": {"n_embd": 32, "n_layer": 2, "n_head": 4, "n_head_kv": 2, "n_ff": 64, "n_ctx": 64, "moe": )" + moe_json + R"(},
    "optim": {"lr": 3e-3, "min_lr": 3e-4, "warmup_steps": 3},
    "batch_size": 4, "seq_len": 32, "steps": )" + std::to_string(steps) + R"(, "eval_every": )" + std::to_string(eval_every) +
                                      R"(, "eval_batches": 1,
    "checkpoint_every": 4, "log_every": 2, "threads": 2, "seed": 7
  })");
  return dir + "/config.json";
}

}  // namespace mf::test
