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
#include "train/data.h"
#include "train/distributed.h"
#include "train/export.h"
#include "train/llama_torch.h"
#include "train/upcycle.h"

namespace mf {
namespace fs = std::filesystem;

namespace {

double lr_at(const TrainOptimConfig& o, int step, int total) {
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
  static void save(const std::string& path, LlamaLM& model, torch::optim::AdamW& opt, int step, int64_t tokens) {
    torch::serialize::OutputArchive ar;
    for (auto& p : model->named_parameters()) ar.write("param/" + p.key(), p.value());
    torch::serialize::OutputArchive opt_ar;
    opt.save(opt_ar);
    ar.write("optimizer", opt_ar);
    ar.write("step", torch::tensor(int64_t(step)));
    ar.write("tokens", torch::tensor(tokens));
    ar.save_to(path + ".tmp");
    fs::rename(path + ".tmp", path);
  }
  static void load(const std::string& path, LlamaLM& model, torch::optim::AdamW& opt, int* step, int64_t* tokens) {
    try {
      torch::serialize::InputArchive ar;
      ar.load_from(path);
      torch::NoGradGuard guard;
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

}  // namespace

TrainResult run_training(const TrainConfig& cfg, const std::string& out_dir, const TrainRunOptions& opts) {
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
  LlamaLM model(cfg.model, tok->n_vocab());
  model->init_weights(cfg.seed);
  if (!cfg.model.moe.upcycle_from.empty()) upcycle_from_dense(model, cfg.model.moe.upcycle_from);
  std::vector<torch::Tensor> decay, no_decay;
  for (auto& p : model->named_parameters()) (p.value().dim() >= 2 ? decay : no_decay).push_back(p.value());
  auto group_opts = [&](double wd) {
    return std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(cfg.optim.lr)
                                                            .betas({cfg.optim.beta1, cfg.optim.beta2})
                                                            .weight_decay(wd));
  };
  torch::optim::AdamW opt({torch::optim::OptimizerParamGroup(decay, group_opts(cfg.optim.weight_decay)),
                           torch::optim::OptimizerParamGroup(no_decay, group_opts(0.0))});

  std::unique_ptr<DataParallel> dp;
  if (opts.dist.enabled()) dp = std::make_unique<DataParallel>(opts.dist);  // joins before OUT is written
  if (writer) fs::create_directories(out_dir);
  const std::string ckpt = out_dir + "/checkpoint.pt", log_path = out_dir + "/train_log.csv";
  int step = 0;
  int64_t tokens_seen = 0;
  if (opts.resume && fs::exists(ckpt)) {
    Checkpoint::load(ckpt, model, opt, &step, &tokens_seen);
    if (writer) truncate_log(log_path, step);
  } else if (writer) {
    std::ofstream log(log_path);
    log << "step,lr,train_loss,tokens_seen,tokens_per_s";
    for (auto& d : valid) log << ",valid_loss_" << d.name;
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
      dp->average_gradients(model->parameters());
      loss_sum = dp->average(loss_sum);
    }
    torch::nn::utils::clip_grad_norm_(model->parameters(), cfg.optim.grad_clip);
    opt.step();
    ++step;
    ++steps_since_log;
    tokens_seen += tokens_per_step;
    result.train_losses.push_back(loss_sum);
    if (!std::isfinite(loss_sum)) fail("training diverged at step ", step, " (loss ", loss_sum, ")");

    TrainProgress p{step, cfg.steps, loss_sum, lr, 0, tokens_seen, {}, "training"};
    bool eval_now = step % cfg.eval_every == 0 || step == cfg.steps;
    if (eval_now && writer) p.valid_loss = evaluate(model, valid, cfg);
    if (writer && (step % cfg.log_every == 0 || eval_now)) {
      auto now = std::chrono::steady_clock::now();
      p.tokens_per_s = double(steps_since_log * tokens_per_step) / std::chrono::duration<double>(now - t_last).count();
      t_last = now;
      steps_since_log = 0;
      std::ofstream log(log_path, std::ios::app);
      log << step << "," << lr << "," << std::setprecision(9) << loss_sum << std::setprecision(6) << "," << tokens_seen << ","
          << p.tokens_per_s;
      for (auto& d : valid) log << "," << (eval_now ? std::to_string(p.valid_loss[d.name]) : "");
      log << "\n";
    }
    report(p);
    if (writer && (step % cfg.checkpoint_every == 0 || step == cfg.steps || step == opts.stop_after))
      Checkpoint::save(ckpt, model, opt, step, tokens_seen);
    if (eval_now) result.final_valid_loss = p.valid_loss;
    if (step == opts.stop_after) return result;
  }
  report({step, cfg.steps, 0, 0, 0, tokens_seen, {}, "export"});
  if (writer) export_hf(model, cfg.tokenizer, out_dir);
  if (dp) dp->barrier();  // no rank leaves before the model is written
  result.finished = true;
  return result;
}

}  // namespace mf
