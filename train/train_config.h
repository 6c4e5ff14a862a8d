// Training configuration (JSON), validated strictly: unknown keys and impossible shapes are
// errors naming the file and the key. No libtorch here, so the CLI can parse it cheaply.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>
#include <utility>

namespace mf {

// Token-routed MoE FFNs in place of the dense ones ("model": {"moe": {...}}); n_expert 0: dense.
struct TrainMoeConfig {
  int n_expert = 0;
  int top_k = 2;                    // experts per token (top-k routing)
  float top_p = 0.0f;               // > 0: dynamic top-p routing instead, at most max_experts (0: all)
  int max_experts = 0;
  int n_ff_expert = 0;              // width of each expert (0: model.n_ff)
  int n_ff_shared = 0;              // > 0: a shared expert of this width with a sigmoid gate (Qwen2-MoE layout)
  bool renormalize = true;          // chosen weights divided by their sum
  double aux_loss_coef = 0.01;      // load balancing: n_expert * sum_e f_e P_e (Switch, Mixtral)
  double z_loss_coef = 0.001;       // router z-loss: mean logsumexp(logits)^2 (ST-MoE)
  double dynamic_loss_coef = 1e-4;  // top-p only: mean router entropy, kept low so p selects few experts
  double capacity_factor = 0.0;     // > 0: each expert takes at most ceil(cf * tokens * k / n_expert) tokens; 0: dropless
  std::string upcycle_from;         // a dense Hugging Face directory of the same shape: its FFN starts every expert
  std::vector<std::string> branch_from;  // Branch-Train-Mix: one dense directory per expert (its FFN), the rest averaged
  // Trainability (MO-CTE): every trainability_every steps (0: never), the top singular value
  // of each expert's Jacobian on up to trainability_tokens of its tokens (power iteration,
  // trainability_iterations steps); an expert below freeze_threshold times its peak value so far
  // (0: never freeze) for freeze_window checks in a row is frozen for the rest of training.
  // An expert routed fewer than trainability_min_tokens sample tokens (at most
  // trainability_tokens) is not checked that time:
  // sigma grows with the tokens stacked in J, so a check on a few would read as a collapse.
  int trainability_every = 0, trainability_iterations = 8, trainability_tokens = 256, trainability_min_tokens = 16;
  // Cluster-oriented routing (MO-CTE): every cluster_every steps, each layer's inputs on
  // cluster_tokens sample tokens are projected on their top cluster_rank singular vectors and
  // clustered into `clusters` groups (k-means, kmeans_iterations); with a silhouette of at least
  // cluster_threshold, each cluster owns n_expert / clusters experts and its tokens route among
  // them only. clusters 0: off.
  int clusters = 0, cluster_every = 100, cluster_rank = 8, cluster_tokens = 1024, kmeans_iterations = 20;
  double cluster_threshold = 0.2;  // silhouette needed to adopt a clustering, and
  double cluster_margin = 0.05;    // how far above the silhouette of a Gaussian of the same covariance
  double freeze_threshold = 0.0;
  int freeze_window = 3;
  // LoRA-like experts (MO-CTE's option), lora_rank > 0: the experts share one FFN of width
  // n_ff_expert and each adds its own rank-lora_rank update (lora_alpha / lora_rank) B A to
  // its three projections. They export merged, as ordinary experts.
  int lora_rank = 0;
  double lora_alpha = 0;  // 0: 2 * lora_rank
  bool enabled() const { return n_expert > 0; }
};

struct TrainModelConfig {
  int n_embd = 256, n_layer = 6, n_head = 4, n_head_kv = 2, n_ff = 704, n_ctx = 512;
  float rope_theta = 10000.0f, rms_eps = 1e-5f;
  bool tied_embeddings = true;
  TrainMoeConfig moe;
  int n_ff_expert() const { return moe.n_ff_expert > 0 ? moe.n_ff_expert : n_ff; }
};

// LoRA fine-tuning of a pretrained base instead of training from scratch: the base's weights
// stay frozen, each targeted map y = W x gains (alpha / r) B A dropout(x) (PEFT's LoRA), and
// the run exports a PEFT directory. The model's shape comes from the base's config.json.
struct TrainLoraConfig {
  std::string base;  // Hugging Face directory of a Llama-architecture base (the trainer's own export, ...)
  int rank = 8;
  double alpha = 16;
  std::vector<std::string> targets{"all"};  // q_proj k_proj v_proj o_proj gate_proj up_proj down_proj, or all
  double dropout = 0.0;
  bool rslora = false;
  // PHATGOOSE: train only a gate vector per adapted map of this trained adapter (a PEFT
  // directory, frozen; its rank, alpha and targets replace the ones above): y = W x +
  // sigmoid(g . x) scale B A x. The run writes the adapter with its gates (gates.safetensors).
  std::string gates_for;
  bool enabled() const { return !base.empty(); }
};

// MoDE (modular domain experts): a frozen backbone (a Hugging Face Llama directory) whose layers
// are split into `blocks` equal groups. Beside each group, every domain expert has
// `layers_per_expert` transformer layers of the backbone's width, fed the group's input; a gate
// per group (linear + softmax over the backbone and the experts, or its top gate_top_k
// renormalised) mixes their outputs. Stage 1 trains one expert (with a two-way gate) on its own
// domain; stage 2 loads the stage-1 experts and trains the composed gates (and the experts with
// train_experts) on the mixed domains. The run exports a Hugging Face directory the engine runs.
struct TrainModeConfig {
  std::string backbone;
  std::vector<std::string> experts;  // domain names (keys of "train"), in gate order
  int blocks = 2, layers_per_expert = 1;
  std::string gate = "dense";  // "dense" or "top_k"
  int gate_top_k = 1;
  int stage = 1;
  std::string expert;  // stage 1: the expert this run trains (moeforge train --expert NAME)
  std::map<std::string, std::string> expert_dirs;  // stage 2: each expert's stage-1 output directory
  bool train_experts = false;  // stage 2: the experts train beside the gates
  std::string init = "copy";   // expert layers start as copies of backbone layers of their block ("copy"), or "random"
  double gate_init = 0.9;      // stage 1: the backbone's starting gate weight (the expert has the rest)
  bool enabled() const { return !backbone.empty(); }
  // The expert names of this run: stage 1 the one it trains, stage 2 all.
  std::vector<std::string> run_experts() const { return stage == 1 ? std::vector<std::string>{expert} : experts; }
};

struct TrainOptimConfig {
  double lr = 1e-3, min_lr = 1e-4, weight_decay = 0.1, beta1 = 0.9, beta2 = 0.95, grad_clip = 1.0;
  int warmup_steps = 100;
  // The run takes steps [schedule_start, schedule_start + steps) of a warmup + cosine schedule
  // schedule_steps long (0: the run's own steps), so that a run can continue another's
  // schedule (upcycling a dense run halfway) instead of restarting it.
  int schedule_start = 0, schedule_steps = 0;
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
  TrainLoraConfig lora;
  TrainModeConfig mode;
  // Full fine-tuning: start from this Hugging Face directory's weights (and shape) instead of a
  // random initialisation; every parameter trains.
  std::string init_from;
};

// Throws mf::Error for unknown keys, wrong types or impossible values.
TrainConfig load_train_config(const std::string& path);
// A MoDE stage-1 run for one expert (moeforge train --expert NAME): checks the name against
// mode.experts and keeps that domain's training file only (mf::Error naming the problem).
void select_mode_expert(TrainConfig& cfg, const std::string& expert);

// Data-parallel training (train/distributed.h): this process's place in the group.
struct DistOptions {
  int rank = 0, world_size = 1;
  std::string master = "127.0.0.1:29500";  // ADDR:PORT of rank 0's c10d TCPStore
  int timeout_s = 60;                      // rendezvous and collective timeout
  std::string iface;                       // network interface for Gloo ("": the master's address family, see docs)
  bool enabled() const { return world_size > 1; }
};
// Throws mf::Error naming the flag for an impossible rank, world size, timeout or address.
void check_dist_options(const DistOptions& o);
// "ADDR:PORT" split (mf::Error naming --master otherwise).
std::pair<std::string, uint16_t> split_master(const std::string& master);

}  // namespace mf
