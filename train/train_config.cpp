#include "train/train_config.h"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"

namespace mf {

namespace {

using json = nlohmann::json;

// Reads keys of one JSON object into fields, rejecting keys it does not know.
class Section {
 public:
  Section(const json& j, std::string where, const std::string& file) : j_(j), where_(std::move(where)), file_(file) {
    if (!j_.is_object()) fail(file_, ": '", where_, "' must be an object");
  }
  template <typename T>
  Section& get(const char* key, T& out) {
    known_.insert(key);
    if (!j_.contains(key)) return *this;
    try {
      out = j_[key].get<T>();
    } catch (const json::exception&) {
      fail(file_, ": '", where_, key, "' has the wrong type");
    }
    return *this;
  }
  void done() const {
    for (auto& [k, v] : j_.items())
      if (!known_.count(k)) fail(file_, ": unknown key '", where_, k, "'");
  }

 private:
  const json& j_;
  std::string where_;
  const std::string& file_;
  std::set<std::string> known_;
};

void check_moe(const TrainMoeConfig& e, const std::string& path) {
  if (e.n_expert < 0) fail(path, ": model.moe.n_expert must not be negative");
  if (!e.enabled()) return;
  if (e.top_p == 0.0f && (e.top_k < 1 || e.top_k > e.n_expert))
    fail(path, ": model.moe.top_k ", e.top_k, " must be in 1..", e.n_expert, " (model.moe.n_expert)");
  if (e.top_p != 0.0f && !(e.top_p > 0.0f && e.top_p <= 1.0f)) fail(path, ": model.moe.top_p ", e.top_p, " is outside (0, 1]");
  if (e.max_experts < 0 || e.max_experts > e.n_expert)
    fail(path, ": model.moe.max_experts ", e.max_experts, " must be in 0..", e.n_expert);
  if (e.n_ff_expert < 0 || e.n_ff_shared < 0) fail(path, ": model.moe.n_ff_expert and n_ff_shared must not be negative");
  if (e.capacity_factor < 0) fail(path, ": model.moe.capacity_factor must not be negative");
  if (e.capacity_factor > 0 && e.capacity_factor * e.top_k < 1.0)
    fail(path, ": model.moe.capacity_factor ", e.capacity_factor, " leaves the experts room for fewer assignments than tokens",
         " (capacity_factor * top_k < 1)");
  if (e.aux_loss_coef < 0 || e.z_loss_coef < 0 || e.dynamic_loss_coef < 0) fail(path, ": model.moe loss coefficients must not be negative");
  if (e.trainability_every < 0 || e.trainability_iterations < 1 || e.trainability_tokens < 1 || e.freeze_window < 1 ||
      e.freeze_threshold < 0 || e.trainability_min_tokens < 1)
    fail(path, ": model.moe trainability_every must be >= 0, trainability_iterations, trainability_tokens and ",
         "freeze_window >= 1, freeze_threshold >= 0, trainability_min_tokens >= 1");
  if (e.clusters < 0) fail(path, ": model.moe.clusters must not be negative");
  if (e.clusters > 0) {
    if (e.clusters < 2 || e.n_expert % e.clusters)
      fail(path, ": model.moe.clusters ", e.clusters, " must be at least 2 and divide model.moe.n_expert ", e.n_expert);
    if (e.clusters > e.cluster_tokens)
      fail(path, ": model.moe.clusters ", e.clusters, " is above the sample of ", e.cluster_tokens, " tokens (cluster_tokens)");
    const int group = e.n_expert / e.clusters;
    if (e.top_p == 0.0f && e.top_k > group)
      fail(path, ": model.moe.top_k ", e.top_k, " is above the ", group, " experts each cluster owns");
    if (e.cluster_every < 1 || e.cluster_rank < 1 || e.kmeans_iterations < 1)
      fail(path, ": model.moe cluster_every, cluster_rank and kmeans_iterations must be positive");
  }
  if (e.lora_rank < 0 || e.lora_alpha < 0) fail(path, ": model.moe.lora_rank and lora_alpha must not be negative");
  if (e.lora_rank > 0 && !e.branch_from.empty())
    fail(path, ": model.moe.branch_from needs full experts; LoRA-like experts (lora_rank ", e.lora_rank, ") share one FFN");
  // Hugging Face layouts: Mixtral always renormalises; Qwen2-MoE (shared expert) carries norm_topk_prob.
  if (!e.renormalize && e.n_ff_shared == 0)
    fail(path, ": model.moe.renormalize false needs a shared expert (the Qwen2-MoE layout); Mixtral's always renormalises");
}

}  // namespace

std::pair<std::string, uint16_t> split_master(const std::string& master) {
  const size_t colon = master.rfind(':');
  if (colon == std::string::npos || colon == 0) fail("--master '", master, "' must be ADDR:PORT");
  int port = -1;
  try {
    port = std::stoi(master.substr(colon + 1));
  } catch (const std::exception&) {
  }
  if (port <= 0 || port > 65535) fail("--master '", master, "': the port must be in 1..65535");
  return {master.substr(0, colon), uint16_t(port)};
}

void check_dist_options(const DistOptions& o) {
  if (o.world_size < 1) fail("--world-size ", o.world_size, " must be at least 1");
  if (o.rank < 0 || o.rank >= o.world_size) fail("--rank ", o.rank, " must be in 0..", o.world_size - 1);
  if (o.timeout_s < 1) fail("--dist-timeout must be at least 1 second");
  if (o.enabled()) split_master(o.master);
}

namespace {

// The MoDE section alone (the layer split against the backbone is checked when it is loaded).
void check_mode(TrainConfig& c, const json& j, const std::string& path) {
  const TrainModeConfig& d = c.mode;
  if (d.backbone.empty()) fail(path, ": 'mode' needs 'backbone' (the Hugging Face directory of the frozen model)");
  if (j.contains("model") || j.contains("lora")) fail(path, ": 'mode' excludes 'model' and 'lora': a MoDE run takes the backbone's shape");
  if (d.experts.empty()) fail(path, ": 'mode.experts' must name at least one domain");
  for (size_t i = 0; i < d.experts.size(); ++i) {
    if (!c.train.count(d.experts[i])) fail(path, ": mode.experts names '", d.experts[i], "', which 'train' has no file for");
    if (std::find(d.experts.begin(), d.experts.begin() + long(i), d.experts[i]) != d.experts.begin() + long(i))
      fail(path, ": mode.experts names '", d.experts[i], "' twice");
    if (d.experts[i] == "backbone" || d.experts[i] == "auto")
      fail(path, ": mode.experts may not use the reserved name '", d.experts[i], "'");
  }
  if (d.blocks < 1) fail(path, ": 'mode.blocks' must be at least 1");
  if (d.layers_per_expert < 1) fail(path, ": 'mode.layers_per_expert' must be at least 1");
  if (d.gate != "dense" && d.gate != "top_k") fail(path, ": 'mode.gate' must be \"dense\" or \"top_k\" (got \"", d.gate, "\")");
  if (d.gate == "top_k" && d.gate_top_k < 1) fail(path, ": 'mode.gate_top_k' must be at least 1");
  if (d.init != "copy" && d.init != "random") fail(path, ": 'mode.init' must be \"copy\" or \"random\"");
  if (!(d.gate_init > 0 && d.gate_init < 1)) fail(path, ": 'mode.gate_init' must lie in (0, 1)");
  if (d.stage == 2) {
    for (const std::string& e : d.experts)
      if (!d.expert_dirs.count(e)) fail(path, ": stage 2 needs mode.expert_dirs.", e, " (the expert's stage-1 output)");
    if (d.expert_dirs.size() != d.experts.size()) fail(path, ": mode.expert_dirs names an expert that mode.experts does not");
  } else if (d.stage != 1) {
    fail(path, ": 'mode.stage' must be 1 or 2");
  }
  if (c.tokenizer.empty()) c.tokenizer = d.backbone + "/tokenizer.json";
}

}  // namespace

void select_mode_expert(TrainConfig& cfg, const std::string& expert) {
  TrainModeConfig& d = cfg.mode;
  if (!d.enabled()) fail(cfg.path, ": --expert needs a 'mode' section");
  if (d.stage != 1) fail(cfg.path, ": --expert selects a stage-1 run; this config is stage ", d.stage);
  if (std::find(d.experts.begin(), d.experts.end(), expert) == d.experts.end()) {
    std::string known;
    for (const std::string& e : d.experts) known += (known.empty() ? "" : ", ") + e;
    fail(cfg.path, ": --expert '", expert, "' is not in mode.experts (", known, ")");
  }
  d.expert = expert;
  cfg.train = {{expert, cfg.train.at(expert)}};
}

TrainConfig load_train_config(const std::string& path) {
  std::ifstream f(path);
  if (!f) fail(path, ": cannot open");
  json j = json::parse(f, nullptr, false);
  if (j.is_discarded()) fail(path, ": malformed JSON");
  TrainConfig c;
  c.path = path;
  Section top(j, "", path);
  json model = j.value("model", json::object()), optim = j.value("optim", json::object()), lora = json::object(),
       mode = json::object();
  top.get("tokenizer", c.tokenizer).get("train", c.train).get("valid", c.valid).get("batch_size", c.batch_size)
      .get("seq_len", c.seq_len).get("grad_accum", c.grad_accum).get("steps", c.steps).get("eval_every", c.eval_every)
      .get("eval_batches", c.eval_batches).get("checkpoint_every", c.checkpoint_every).get("log_every", c.log_every)
      .get("seed", c.seed).get("threads", c.threads).get("model", model).get("optim", optim).get("lora", lora)
      .get("mode", mode).get("init_from", c.init_from);
  top.done();
  if (!c.init_from.empty()) {
    if (j.contains("model") || j.contains("lora") || j.contains("mode"))
      fail(path, ": 'init_from' excludes 'model', 'lora' and 'mode': a fine-tuning run takes the checkpoint's shape");
    if (c.tokenizer.empty()) c.tokenizer = c.init_from + "/tokenizer.json";
  }
  TrainLoraConfig& l = c.lora;
  Section(lora, "lora.", path).get("base", l.base).get("rank", l.rank).get("alpha", l.alpha).get("targets", l.targets)
      .get("dropout", l.dropout).get("rslora", l.rslora).get("gates_for", l.gates_for).done();
  if (!lora.empty()) {
    if (l.base.empty()) fail(path, ": 'lora' needs 'base' (the Hugging Face directory of the model to adapt)");
    if (j.contains("model")) fail(path, ": 'model' and 'lora' exclude each other: a LoRA run takes the base's shape");
    if (l.rank < 1) fail(path, ": 'lora.rank' must be at least 1");
    if (!(l.alpha > 0)) fail(path, ": 'lora.alpha' must be positive");
    if (l.dropout < 0 || l.dropout >= 1) fail(path, ": 'lora.dropout' must lie in [0, 1)");
    static const char* kTargets[] = {"all", "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
    if (l.targets.empty()) fail(path, ": 'lora.targets' is empty");
    for (const std::string& t : l.targets)
      if (std::find(std::begin(kTargets), std::end(kTargets), t) == std::end(kTargets))
        fail(path, ": unknown target module '", t, "' in lora.targets (q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, "
             "down_proj or all)");
    if (c.tokenizer.empty()) c.tokenizer = l.base + "/tokenizer.json";
  }
  TrainModeConfig& d = c.mode;
  Section(mode, "mode.", path).get("backbone", d.backbone).get("experts", d.experts).get("blocks", d.blocks)
      .get("layers_per_expert", d.layers_per_expert).get("gate", d.gate).get("gate_top_k", d.gate_top_k)
      .get("stage", d.stage).get("expert_dirs", d.expert_dirs).get("train_experts", d.train_experts)
      .get("init", d.init).get("gate_init", d.gate_init).done();
  if (!mode.empty()) check_mode(c, j, path);
  TrainModelConfig& m = c.model;
  json moe = json::object();
  Section(model, "model.", path).get("n_embd", m.n_embd).get("n_layer", m.n_layer).get("n_head", m.n_head)
      .get("n_head_kv", m.n_head_kv).get("n_ff", m.n_ff).get("n_ctx", m.n_ctx).get("rope_theta", m.rope_theta)
      .get("rms_eps", m.rms_eps).get("tied_embeddings", m.tied_embeddings).get("moe", moe).done();
  TrainMoeConfig& e = m.moe;
  Section(moe, "model.moe.", path).get("n_expert", e.n_expert).get("top_k", e.top_k).get("top_p", e.top_p)
      .get("max_experts", e.max_experts).get("n_ff_expert", e.n_ff_expert).get("n_ff_shared", e.n_ff_shared)
      .get("renormalize", e.renormalize).get("aux_loss_coef", e.aux_loss_coef).get("z_loss_coef", e.z_loss_coef)
      .get("dynamic_loss_coef", e.dynamic_loss_coef).get("capacity_factor", e.capacity_factor)
      .get("upcycle_from", e.upcycle_from).get("branch_from", e.branch_from).get("trainability_every", e.trainability_every)
      .get("trainability_iterations", e.trainability_iterations).get("trainability_tokens", e.trainability_tokens)
      .get("trainability_min_tokens", e.trainability_min_tokens)
      .get("freeze_threshold", e.freeze_threshold).get("freeze_window", e.freeze_window).get("clusters", e.clusters)
      .get("cluster_every", e.cluster_every).get("cluster_rank", e.cluster_rank).get("cluster_tokens", e.cluster_tokens)
      .get("kmeans_iterations", e.kmeans_iterations).get("cluster_threshold", e.cluster_threshold)
      .get("cluster_margin", e.cluster_margin).get("lora_rank", e.lora_rank).get("lora_alpha", e.lora_alpha).done();
  if (e.lora_alpha == 0) e.lora_alpha = 2.0 * e.lora_rank;
  check_moe(e, path);
  TrainOptimConfig& o = c.optim;
  Section(optim, "optim.", path).get("lr", o.lr).get("min_lr", o.min_lr).get("weight_decay", o.weight_decay)
      .get("beta1", o.beta1).get("beta2", o.beta2).get("grad_clip", o.grad_clip).get("warmup_steps", o.warmup_steps)
      .get("schedule_start", o.schedule_start).get("schedule_steps", o.schedule_steps).done();

  auto positive = [&](const char* what, double v) {
    if (!(v > 0)) fail(path, ": '", what, "' must be positive");
  };
  positive("model.n_embd", m.n_embd);
  positive("model.n_layer", m.n_layer);
  positive("model.n_head", m.n_head);
  positive("model.n_head_kv", m.n_head_kv);
  positive("model.n_ff", m.n_ff);
  positive("model.n_ctx", m.n_ctx);
  positive("batch_size", c.batch_size);
  positive("seq_len", c.seq_len);
  positive("grad_accum", c.grad_accum);
  positive("steps", c.steps);
  positive("optim.lr", o.lr);
  if (m.n_embd % m.n_head) fail(path, ": model.n_embd ", m.n_embd, " is not a multiple of model.n_head ", m.n_head);
  if (m.n_head % m.n_head_kv) fail(path, ": model.n_head ", m.n_head, " is not a multiple of model.n_head_kv ", m.n_head_kv);
  if ((m.n_embd / m.n_head) % 2) fail(path, ": head size ", m.n_embd / m.n_head, " must be even for RoPE");
  if (!c.lora.enabled() && !c.mode.enabled() && c.init_from.empty() && c.seq_len > m.n_ctx) fail(path, ": seq_len ", c.seq_len, " exceeds model.n_ctx ", m.n_ctx);
  if (o.min_lr > o.lr || o.min_lr < 0) fail(path, ": optim.min_lr must lie in [0, optim.lr]");
  if (o.schedule_start < 0) fail(path, ": optim.schedule_start must not be negative");
  if (o.schedule_steps != 0 && o.schedule_steps < o.schedule_start + c.steps)
    fail(path, ": optim.schedule_steps ", o.schedule_steps, " is shorter than schedule_start + steps (", o.schedule_start + c.steps, ")");
  if (c.tokenizer.empty()) fail(path, ": missing 'tokenizer'");
  if (c.train.empty()) fail(path, ": 'train' must name at least one domain file");
  if (c.eval_every <= 0 || c.checkpoint_every <= 0 || c.log_every <= 0 || c.eval_batches <= 0)
    fail(path, ": eval_every, eval_batches, checkpoint_every and log_every must be positive");
  return c;
}

}  // namespace mf
