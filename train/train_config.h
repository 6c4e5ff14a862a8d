// Training configuration (JSON), validated strictly: unknown keys and impossible shapes are
// errors naming the file and the key. No libtorch here, so the CLI can parse it cheaply.
#pragma once
#include <cstdint>
#include <map>
#include <string>

namespace mf {

struct TrainModelConfig {
  int n_embd = 256, n_layer = 6, n_head = 4, n_head_kv = 2, n_ff = 704, n_ctx = 512;
  float rope_theta = 10000.0f, rms_eps = 1e-5f;
  bool tied_embeddings = true;
};

struct TrainOptimConfig {
  double lr = 1e-3, min_lr = 1e-4, weight_decay = 0.1, beta1 = 0.9, beta2 = 0.95, grad_clip = 1.0;
  int warmup_steps = 100;
};

struct TrainConfig {
  std::string path;  // the config file, for messages
  TrainModelConfig model;
  TrainOptimConfig optim;
  std::string tokenizer;                       // tokenizer.json
  std::map<std::string, std::string> train;    // domain -> text file
  std::map<std::string, std::string> valid;    // domain -> text file
  int batch_size = 16, seq_len = 256, grad_accum = 1;
  int steps = 1000, eval_every = 100, eval_batches = 4, checkpoint_every = 100, log_every = 10;
  uint64_t seed = 1234;
  int threads = 0;  // 0: all cores
};

// Throws mf::Error for unknown keys, wrong types or impossible values.
TrainConfig load_train_config(const std::string& path);

}  // namespace mf
