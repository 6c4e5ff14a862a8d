// The training loop: AdamW, warm-up + cosine schedule, gradient clipping and accumulation,
// per-domain evaluation, checkpoints with exact resume, CSV log, export.
#include "train/trainer.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <sstream>

#include "core/error.h"
#include "train/cluster_routing.h"
#include "train/data.h"
#include "train/distributed.h"
#include "train/export.h"
#include "train/llama_torch.h"
#include "train/trainability.h"
#include "train/lora_torch.h"
#include "train/mode_torch.h"
#include "train/upcycle.h"

namespace mf {
namespace fs = std::filesystem;

namespace {

double lr_at(const TrainOptimConfig& o, int run_step, int run_steps) {
  const int step = o.schedule_start + run_step, total = o.schedule_steps > 0 ? o.schedule_steps : run_steps;
  if (step < o.warmup_steps) return o.lr * double(step + 1) / double(o.warmup_steps);
  double progress = double(step - o.warmup_steps) / std::max(1, total - o.warmup_steps);
  return o.min_lr + 0.5 * (o.lr - o.min_lr) * (1 + std::cos(M_PI * std::min(1.0, progress)));
}

torch::Tensor lm_loss(LlamaLM& model, const torch::Tensor& batch) {
  const int64_t T = batch.size(1) - 1;
  auto inputs = batch.narrow(1, 0, T), targets = batch.narrow(1, 1, T);  // [B, T] each
  auto logits = model->forward(inputs);                                    // [B, T, V]
  return torch::nn::functional::cross_entropy(logits.reshape({-1, logits.size(-1)}), targets.reshape({-1}));
}

// Mean loss over fixed validation batches per domain (same batches at every evaluation).
std::map<std::string, double> evaluate(LlamaLM& model, const std::vector<DomainTokens>& valid, const TrainConfig& cfg) {
  torch::NoGradGuard guard;
  model->eval();
  std::map<std::string, double> out;
  for (size_t d = 0; d < valid.size(); ++d) {
    double sum = 0;
    for (int i = 0; i < cfg.eval_batches; ++i)
      sum += lm_loss(model, sample_domain_batch(valid[d], cfg.batch_size, cfg.seq_len, cfg.seed, (1ull << 40) + d * 1000 + i))
                 .item<double>();
    out[valid[d].name] = sum / cfg.eval_batches;
  }
  model->train();
  return out;
}

struct Checkpoint {
  static void save(const std::string& path, LlamaLM& model, torch::optim::AdamW& opt, int step, int64_t tokens,
                   const ExpertFreezer* freezer) {
    torch::serialize::OutputArchive ar;
    for (auto& p : model->named_parameters()) ar.write("param/" + p.key(), p.value());
    if (freezer) ar.write("trainability", freezer_state(model, *freezer));
    torch::serialize::OutputArchive opt_ar;
    opt.save(opt_ar);
    ar.write("optimizer", opt_ar);
    ar.write("step", torch::tensor(int64_t(step)));
    ar.write("tokens", torch::tensor(tokens));
    ar.save_to(path + ".tmp");
    fs::rename(path + ".tmp", path);
  }
  // [n_moe_layers, n_expert, 2] f64: (-1 frozen, else checks below the threshold in a row;
  // the first measured value).
  static torch::Tensor freezer_state(LlamaLM& model, const ExpertFreezer& f) {
    const auto layers = model->moe_layers();
    auto m = torch::zeros({int64_t(layers.size()), int64_t(model->cfg.moe.n_expert), 2}, torch::kFloat64);
    for (size_t l = 0; l < layers.size(); ++l)
      for (int e = 0; e < model->cfg.moe.n_expert; ++e) {
        m[int64_t(l)][e][0] = f.state(int(l), e);
        m[int64_t(l)][e][1] = f.reference(int(l), e);
      }
    return m;
  }
  static void load(const std::string& path, LlamaLM& model, torch::optim::AdamW& opt, int* step, int64_t* tokens,
                   ExpertFreezer* freezer) {
    try {
      torch::serialize::InputArchive ar;
      ar.load_from(path);
      torch::NoGradGuard guard;
      torch::Tensor state;
      if (freezer && ar.try_read("trainability", state)) {  // frozen experts stay frozen, counts continue
        const auto layers = model->moe_layers();
        if (state.dim() != 3 || state.size(0) != int64_t(layers.size()) || state.size(1) != model->cfg.moe.n_expert)
          fail(path, ": trainability state has the wrong shape");
        for (size_t l = 0; l < layers.size(); ++l)
          for (int e = 0; e < model->cfg.moe.n_expert; ++e) {
            freezer->set_state(int(l), e, int(state[int64_t(l)][e][0].item<double>()), state[int64_t(l)][e][1].item<double>());
            if (freezer->frozen(int(l), e))
              for (torch::Tensor& p : layers[l]->experts->ptr<ExpertMlpImpl>(e)->parameters()) p.set_requires_grad(false);
          }
      }
      for (auto& p : model->named_parameters()) {
        torch::Tensor t;
        ar.read("param/" + p.key(), t);
        if (!t.sizes().equals(p.value().sizes())) fail(path, ": parameter '", p.key(), "' has the wrong shape");
        p.value().copy_(t);
      }
      torch::serialize::InputArchive opt_ar;
      ar.read("optimizer", opt_ar);
      opt.load(opt_ar);
      torch::Tensor s, k;
      ar.read("step", s);
      ar.read("tokens", k);
      *step = int(s.item<int64_t>());
      *tokens = k.item<int64_t>();
    } catch (const c10::Error& e) {
      fail(path, ": corrupted checkpoint (", std::string(e.what()).substr(0, 120), ")");
    }
  }
};

// Keeps the log's header and rows up to `step` (a resumed run rewrites what follows).
void truncate_log(const std::string& path, int step) {
  std::ifstream in(path);
  if (!in) return;
  std::stringstream kept;
  std::string line;
  bool header = true;
  while (std::getline(in, line)) {
    if (header || std::stoi(line.substr(0, line.find(','))) <= step) kept << line << "\n";
    header = false;
  }
  in.close();
  std::ofstream(path) << kept.str();
}

// Expert utilisation of the last micro-batch, averaged over the MoE layers: experts per token,
// load imbalance (busiest expert over the mean), share of assignments dropped by capacity,
// and the auxiliary terms (before their coefficients).
std::string moe_log_fields(const LlamaLM& model) {
  double used = 0, imbalance = 0, dropped = 0, aux = 0, z = 0, h = 0;
  const auto layers = model->moe_layers();
  for (const MoeFfn& m : layers) {
    used += m->experts_per_token;
    auto counts = m->tokens_per_expert.to(torch::kFloat64);
    imbalance += (counts.max() / counts.mean().clamp_min(1e-9)).item<double>();
    const double assigned = counts.sum().item<double>();
    dropped += m->dropped / std::max(1.0, assigned + double(m->dropped));
    aux += m->aux_loss.item<double>();
    z += m->z_loss.item<double>();
    h += m->entropy.item<double>();
  }
  const double n = std::max<size_t>(layers.size(), 1);
  std::ostringstream o;
  o << used / n << "," << imbalance / n << "," << dropped / n << "," << aux / n << "," << z / n << "," << h / n;
  return o.str();
}

// Appends rows to a CSV log, writing the header first when the file is new; path "" (a rank
// other than 0) writes nothing.
void append_csv(const std::string& path, const std::string& header, const std::string& rows) {
  if (path.empty()) return;
  const bool fresh = !fs::exists(path);
  std::ofstream out(path, std::ios::app);
  if (fresh) out << header << "\n";
  out << rows;
}

// Runs the model without gradients on a fixed sample batch of the step (the same on every
// rank) with the MoE layers recording their inputs and routing.
void record_moe_inputs(LlamaLM& model, const std::vector<DomainTokens>& train, const TrainConfig& cfg, uint64_t stream,
                       int batch_size) {
  auto batch = sample_batch(train, batch_size, cfg.seq_len, cfg.seed, stream);
  torch::NoGradGuard guard;
  model->eval();  // dropless, as at inference
  const auto layers = model->moe_layers();
  for (MoeFfn m : layers) m->record = true;
  model->forward(batch.narrow(1, 0, cfg.seq_len));
  for (MoeFfn m : layers) m->record = false;
  model->train();
}

// Cluster-oriented routing (MO-CTE): per MoE layer, the inputs of cluster_tokens sample tokens,
// centred and projected on their top singular vectors (randomised SVD), clustered by k-means;
// a silhouette of at least cluster_threshold and cluster_margin above that of a Gaussian of the
// same covariance (re)sets the layer's cluster gate. New clusters
// take the labels of the old ones they overlap most, so experts keep their cluster. One row
// per layer goes to `csv` with the wall-clock seconds of the whole step. Returns the seconds.
double recluster(LlamaLM& model, const std::vector<DomainTokens>& train, const TrainConfig& cfg, int step,
                 const std::string& csv) {
  const auto t0 = std::chrono::steady_clock::now();
  const TrainMoeConfig& c = cfg.model.moe;
  const int rows_needed = (c.cluster_tokens + cfg.seq_len - 1) / cfg.seq_len;
  record_moe_inputs(model, train, cfg, (uint64_t(1) << 42) + uint64_t(step), rows_needed);
  const auto layers = model->moe_layers();
  struct Row {
    size_t layer;
    int64_t tokens;
    double silhouette, null_silhouette, inertia;
    bool adopted;
  };
  std::vector<Row> rows;
  for (size_t l = 0; l < layers.size(); ++l) {
    MoeFfn m = layers[l];
    auto x = m->last_input.narrow(0, 0, std::min<int64_t>(m->last_input.size(0), c.cluster_tokens)).to(torch::kFloat64);
    auto mean = x.mean(0);                                                         // [E]
    auto V = randomized_top_singular_vectors(x - mean, c.cluster_rank, 8, cfg.seed + uint64_t(step) * 31 + l);  // [E, r]
    auto z = torch::matmul(x - mean, V);                                           // [N, r]
    KMeansResult km = kmeans(z, c.clusters, c.kmeans_iterations, cfg.seed + uint64_t(step) * 37 + l);
    const double s = silhouette(z, km.labels, c.clusters);
    const double s_null = null_silhouette(z, c.clusters, c.kmeans_iterations, cfg.seed + uint64_t(step) * 41 + l);
    const bool adopt = s >= c.cluster_threshold && s - s_null >= c.cluster_margin;
    if (adopt) {
      ClusterGate g = cluster_gate(mean, V, km.centroids);
      if (m->clustered()) {  // keep each expert group with the cluster it served
        auto old = m->cluster_gate(x.to(torch::kFloat32)).argmax(1);  // [N]
        std::vector<int64_t> perm(size_t(c.clusters), -1);
        std::vector<bool> used(size_t(c.clusters), false);
        auto overlap = torch::zeros({c.clusters, c.clusters}, torch::kInt64);  // [new, old]
        overlap.index_put_({km.labels, old}, torch::ones_like(old), /*accumulate=*/true);
        for (int k = 0; k < c.clusters; ++k) {  // greedy: the largest remaining overlap first
          auto o = overlap.clone();
          for (int a = 0; a < c.clusters; ++a)
            for (int b = 0; b < c.clusters; ++b)
              if (perm[size_t(a)] >= 0 || used[size_t(b)]) o[a][b] = -1;
          const int64_t best = o.argmax().item<int64_t>();
          perm[size_t(best / c.clusters)] = best % c.clusters;
          used[size_t(best % c.clusters)] = true;
        }
        auto w = torch::empty_like(g.weight), b = torch::empty_like(g.bias);
        for (int a = 0; a < c.clusters; ++a) w[perm[size_t(a)]] = g.weight[a], b[perm[size_t(a)]] = g.bias[a];
        g.weight = w;
        g.bias = b;
      }
      torch::NoGradGuard guard;
      m->cluster_gate->weight.copy_(g.weight);
      m->cluster_gate->bias.copy_(g.bias);
      m->cluster_active.fill_(1.0);
    }
    rows.push_back({l, x.size(0), s, s_null, km.inertia, adopt});
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::ostringstream body;
  for (const Row& r : rows)
    body << step << "," << r.layer << "," << r.tokens << "," << r.silhouette << "," << r.null_silhouette << ","
         << int(r.adopted) << "," << r.inertia << "," << seconds << "\n";
  append_csv(csv, "step,layer,tokens,silhouette,null_silhouette,adopted,inertia,step_seconds", body.str());
  return seconds;
}

// One trainability check (MO-CTE): each expert's Jacobian top singular value on up to
// trainability_tokens of the tokens routed to it in a fixed sample batch (the same on every
// rank), freezing experts as the freezer decides; appends to `csv` (when not empty) one row
// per expert with the check's wall-clock seconds, so its cost is counted. Returns the seconds.
double check_trainability(LlamaLM& model, const std::vector<DomainTokens>& train, const TrainConfig& cfg, int step,
                          ExpertFreezer& freezer, const std::string& csv) {
  const auto t0 = std::chrono::steady_clock::now();
  const TrainMoeConfig& c = cfg.model.moe;
  const auto layers = model->moe_layers();
  record_moe_inputs(model, train, cfg, (uint64_t(1) << 41) + uint64_t(step), cfg.batch_size);
  struct Row {
    int layer, expert;
    int64_t tokens;
    double sigma;
    bool frozen;
  };
  std::vector<Row> rows;
  for (size_t l = 0; l < layers.size(); ++l)
    for (int e = 0; e < c.n_expert; ++e) {
      if (freezer.frozen(int(l), e)) continue;
      auto idx = layers[l]->last_selected.index({torch::indexing::Slice(), e}).nonzero().squeeze(1);  // [n_e]
      if (idx.numel() < std::min(c.trainability_min_tokens, c.trainability_tokens)) continue;  // too few tokens this time: no evidence either way
      idx = idx.narrow(0, 0, std::min<int64_t>(idx.numel(), c.trainability_tokens));
      ExpertMlp handle(layers[l]->experts->ptr<ExpertMlpImpl>(e));
      const double sigma = jacobian_top_singular_value(handle, layers[l]->last_input.index_select(0, idx),
                                                       c.trainability_iterations, cfg.seed + uint64_t(step));
      const bool now_frozen = c.freeze_threshold > 0 && freezer.observe(int(l), e, sigma);
      if (now_frozen) freeze_expert(handle);
      rows.push_back({int(l), e, idx.numel(), sigma, now_frozen});
    }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::ostringstream body;
  for (const Row& r : rows)
    body << step << "," << r.layer << "," << r.expert << "," << r.tokens << "," << std::setprecision(8) << r.sigma
         << std::setprecision(6) << "," << int(r.frozen) << "," << seconds << "\n";
  append_csv(csv, "step,layer,expert,tokens,sigma,frozen_now,check_seconds", body.str());
  return seconds;
}

}  // namespace

TrainResult run_training(const TrainConfig& cfg, const std::string& out_dir, const TrainRunOptions& opts) {
  if (cfg.mode.enabled() && cfg.mode.stage == 1 && cfg.mode.expert.empty()) {
    if (cfg.mode.experts.size() != 1)
      fail(cfg.path, ": a stage-1 MoDE run trains one expert: pass --expert NAME (one of mode.experts)");
    TrainConfig one = cfg;
    select_mode_expert(one, cfg.mode.experts[0]);
    return run_training(one, out_dir, opts);
  }
  auto report = [&](TrainProgress p) {
    if (opts.on_progress) opts.on_progress(p);
  };
  if (cfg.threads > 0) torch::set_num_threads(cfg.threads);

  // Everything that can fail on bad input happens before OUT is created.
  report({0, cfg.steps, 0, 0, 0, 0, {}, "tokenizing"});
  auto tok = make_tokenizer(load_hf_tokenizer_spec(cfg.tokenizer));
  auto train = tokenize_domains(cfg.train, *tok, cfg.seq_len);
  auto valid = tokenize_domains(cfg.valid.empty() ? cfg.train : cfg.valid, *tok, cfg.seq_len);

  check_dist_options(opts.dist);
  const int rank = opts.dist.rank, world = opts.dist.world_size;
  const bool writer = rank == 0;
  // LoRA and MoDE runs adapt a frozen base of its own shape; other runs train the configured model.
  int64_t n_vocab = tok->n_vocab();
  const std::string& base = cfg.lora.enabled() ? cfg.lora.base : cfg.mode.enabled() ? cfg.mode.backbone : cfg.init_from;
  const TrainModelConfig model_cfg = base.empty() ? cfg.model : model_config_from_hf(base, &n_vocab);
  if (!base.empty() && n_vocab < tok->n_vocab())
    fail(base, ": vocab_size ", n_vocab, " is smaller than the tokenizer's ", tok->n_vocab());
  if (cfg.seq_len > model_cfg.n_ctx) fail(cfg.path, ": seq_len ", cfg.seq_len, " exceeds the model's context ", model_cfg.n_ctx);
  LlamaLM model(model_cfg, n_vocab);
  model->init_weights(cfg.seed);
  if (!cfg.model.moe.upcycle_from.empty()) upcycle_from_dense(model, cfg.model.moe.upcycle_from);
  if (!cfg.model.moe.branch_from.empty()) branch_train_mix(model, cfg.model.moe.branch_from);
  std::vector<torch::Tensor> trainable;  // the parameters the optimiser and the all-reduce see
  TrainLoraConfig lora_cfg = cfg.lora;  // a gate run takes its adapter's rank, alpha and targets
  if (cfg.lora.enabled()) {
    load_base_weights(model, cfg.lora.base);
    trainable = cfg.lora.gates_for.empty() ? attach_lora(model, lora_cfg, cfg.seed) : attach_gated_lora(model, lora_cfg, cfg.seed);
  } else if (cfg.mode.enabled()) {
    load_base_weights(model, cfg.mode.backbone);
    trainable = attach_mode(model, cfg.mode, cfg.seed);
  } else {
    if (!cfg.init_from.empty()) load_base_weights(model, cfg.init_from);
    trainable = model->parameters();
  }
  std::vector<torch::Tensor> decay, no_decay;
  for (auto& p : trainable) (p.dim() >= 2 ? decay : no_decay).push_back(p);
  auto group_opts = [&](double wd) {
    return std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(cfg.optim.lr)
                                                            .betas({cfg.optim.beta1, cfg.optim.beta2})
                                                            .weight_decay(wd));
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, group_opts(cfg.optim.weight_decay));
  if (!no_decay.empty()) groups.emplace_back(no_decay, group_opts(0.0));
  torch::optim::AdamW opt(groups);

  std::unique_ptr<ExpertFreezer> freezer;  // MO-CTE trainability checks
  if (cfg.model.moe.enabled() && cfg.model.moe.trainability_every > 0)
    freezer = std::make_unique<ExpertFreezer>(cfg.model.n_layer, cfg.model.moe.n_expert, cfg.model.moe.freeze_threshold,
                                              cfg.model.moe.freeze_window);
  std::unique_ptr<DataParallel> dp;
  if (opts.dist.enabled()) {
    dp = std::make_unique<DataParallel>(opts.dist);  // joins before OUT is written
    for (MoeFfn m : model->moe_layers()) m->sum_over_ranks = [d = dp.get()](const torch::Tensor& t) { return d->sum(t); };
  }
  if (writer) fs::create_directories(out_dir);
  const std::string ckpt = out_dir + "/checkpoint.pt", log_path = out_dir + "/train_log.csv";
  int step = 0;
  int64_t tokens_seen = 0;
  if (opts.resume && fs::exists(ckpt)) {
    Checkpoint::load(ckpt, model, opt, &step, &tokens_seen, freezer.get());
    if (writer)  // rows past the checkpoint came from the interrupted run and will be redone
      for (const char* f : {"/train_log.csv", "/trainability.csv", "/clusters.csv"}) truncate_log(out_dir + f, step);
  } else if (writer) {
    std::ofstream log(log_path);
    log << "step,lr,train_loss,tokens_seen,tokens_per_s";
    for (auto& d : valid) log << ",valid_loss_" << d.name;
    if (cfg.model.moe.enabled()) log << ",experts_per_token,load_imbalance,dropped_share,aux_loss,z_loss,router_entropy";
    log << "\n";
  }

  TrainResult result;
  result.first_step = step + 1;
  const int64_t tokens_per_step = int64_t(cfg.batch_size) * world * cfg.grad_accum * cfg.seq_len;
  auto t_last = std::chrono::steady_clock::now();
  int steps_since_log = 0;
  while (step < cfg.steps) {
    const double lr = lr_at(cfg.optim, step, cfg.steps);
    for (auto& g : opt.param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
    opt.zero_grad();
    double loss_sum = 0;
    for (int m = 0; m < cfg.grad_accum; ++m) {
      // This rank's rows of the global batch (which depends only on seed, step and micro-step).
      auto batch = sample_batch(train, cfg.batch_size * world, cfg.seq_len, cfg.seed, uint64_t(step) * cfg.grad_accum + m)
                       .narrow(0, int64_t(rank) * cfg.batch_size, cfg.batch_size);  // [B, T + 1]
      auto lm = lm_loss(model, batch);
      // MoE layers add their load-balancing, z- and (top-p) entropy losses; the logged loss is
      // the language-model loss alone, comparable with a dense model's.
      auto loss = (lm + model->moe_aux_loss()) / cfg.grad_accum;
      loss.backward();
      loss_sum += lm.item<double>() / cfg.grad_accum;
    }
    if (dp) {
      dp->average_gradients(trainable);
      loss_sum = dp->average(loss_sum);
    }
    // Utilisation of this step's last training micro-batch, read before evaluation,
    // re-clustering or trainability checks run forwards of their own.
    const bool eval_now = (step + 1) % cfg.eval_every == 0 || step + 1 == cfg.steps;
    const bool log_now = writer && ((step + 1) % cfg.log_every == 0 || eval_now);
    const std::string moe_fields = cfg.model.moe.enabled() && log_now ? moe_log_fields(model) : "";
    torch::nn::utils::clip_grad_norm_(trainable, cfg.optim.grad_clip);
    opt.step();
    ++step;
    if (cfg.model.moe.clusters > 0 && step % cfg.model.moe.cluster_every == 0)
      result.clustering_seconds += recluster(model, train, cfg, step, writer ? out_dir + "/clusters.csv" : "");
    if (freezer && step % cfg.model.moe.trainability_every == 0)
      result.trainability_seconds +=
          check_trainability(model, train, cfg, step, *freezer, writer ? out_dir + "/trainability.csv" : "");
    ++steps_since_log;
    tokens_seen += tokens_per_step;
    result.train_losses.push_back(loss_sum);
    if (!std::isfinite(loss_sum)) fail("training diverged at step ", step, " (loss ", loss_sum, ")");

    TrainProgress p{step, cfg.steps, loss_sum, lr, 0, tokens_seen, {}, "training"};
    if (eval_now && writer) p.valid_loss = evaluate(model, valid, cfg);
    // The rate since the last logged step: the progress line shows it at every step.
    const auto now = std::chrono::steady_clock::now();
    p.tokens_per_s = double(steps_since_log * tokens_per_step) / std::chrono::duration<double>(now - t_last).count();
    if (log_now) {
      t_last = now;
      steps_since_log = 0;
      std::ofstream log(log_path, std::ios::app);
      log << step << "," << lr << "," << std::setprecision(9) << loss_sum << std::setprecision(6) << "," << tokens_seen << ","
          << p.tokens_per_s;
      for (auto& d : valid) log << "," << (eval_now ? std::to_string(p.valid_loss[d.name]) : "");
      if (cfg.model.moe.enabled()) log << "," << moe_fields;
      log << "\n";
    }
    report(p);
    if (writer && (step % cfg.checkpoint_every == 0 || step == cfg.steps || step == opts.stop_after))
      Checkpoint::save(ckpt, model, opt, step, tokens_seen, freezer.get());
    if (eval_now) result.final_valid_loss = p.valid_loss;
    if (step == opts.stop_after) return result;
  }
  report({step, cfg.steps, 0, 0, 0, tokens_seen, {}, "export"});
  if (writer && cfg.mode.enabled()) {  // the report's gate weights per domain of input
    std::vector<std::pair<std::string, torch::Tensor>> batches;
    for (size_t d = 0; d < valid.size(); ++d)
      batches.emplace_back(valid[d].name, sample_domain_batch(valid[d], cfg.batch_size, cfg.seq_len, cfg.seed,
                                                              (1ull << 40) + d * 1000).narrow(1, 0, cfg.seq_len));
    write_gate_report(model, batches, out_dir + "/gates_by_domain.csv");
  }
  if (writer) {
    if (cfg.lora.enabled())
      export_peft(model, lora_cfg, out_dir);
    else
      export_hf(model, cfg.tokenizer, out_dir);
  }
  if (dp) dp->barrier();  // no rank leaves before the model is written
  result.finished = true;
  return result;
}

}  // namespace mf
