#include "model/throughput.h"

#include <algorithm>
#include <chrono>
#include <random>

#include "model/routing_report.h"
#include "model/session.h"
#include "ops/ops.h"

namespace mf {

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int64_t decode_weight_bytes(const Model& m, const std::vector<LayerWeights>* layers, double experts_per_token) {
  if (experts_per_token < 0) experts_per_token = m.routing.top_k;
  double b = double(m.w.output.nbytes()) + double(m.w.tok_embd.row_stride());
  const ModeLayout& md = m.mode;
  for (int blk = 0; blk < md.n_block; ++blk) b += double(md.gate_w[size_t(blk)].nbytes() + md.gate_b[size_t(blk)].nbytes());
  const std::vector<LayerWeights>& all = layers ? *layers : m.w.layers;
  for (size_t il = 0; il < all.size(); ++il) {
    const LayerWeights& l = all[il];
    if (md.enabled() && int(il) >= md.n_layer_backbone) {  // MoDE: only the experts the model's choice runs
      const int j = (int(il) - md.n_layer_backbone) / (md.n_block * md.layers_per_expert);
      if (m.mode_expert != kModeGated && m.mode_expert != j) continue;
    }
    for (const TensorView* t : {&l.wq, &l.wk, &l.wv, &l.wo, &l.ffn_gate, &l.ffn_up, &l.ffn_down, &l.ffn_gate_inp,
                                &l.shared.gate, &l.shared.up, &l.shared.down})
      if (t->data) b += double(t->nbytes());
    if (!l.experts.empty()) {  // the chosen experts only (all experts have one size)
      const ExpertWeights& e = l.experts[0];
      b += experts_per_token * double(e.gate.nbytes() + e.up.nbytes() + e.down.nbytes());
    }
  }
  return int64_t(b);
}

std::vector<Throughput> measure_throughput(const Model& model, const std::vector<const std::vector<LayerWeights>*>& configs,
                                           const ThroughputOptions& o, ThreadPool& pool,
                                           const std::function<void(int, int)>& on_rep) {
  Session session(model, o.n_prompt + o.n_gen, pool);
  std::mt19937 rng(42);
  std::vector<int32_t> prompt(o.n_prompt);
  for (auto& t : prompt) t = int32_t(rng() % model.hp.n_vocab);
  using clock = std::chrono::steady_clock;
  auto seconds = [](clock::time_point a, clock::time_point b) { return std::chrono::duration<double>(b - a).count(); };
  std::vector<Throughput> out(configs.size());
  for (int r = 0; r <= o.reps; ++r) {  // repetition 0 warms caches and is discarded
    for (size_t c = 0; c < configs.size(); ++c) {
      session.set_layers(configs[c]);
      if (o.n_prompt > 0) {
        session.reset();
        session.reset_routing_stats();
        auto t0 = clock::now();
        session.eval(prompt, false);
        if (r) out[c].prefill_all.push_back(o.n_prompt / seconds(t0, clock::now()));
        if (model.hp.n_expert > 0) out[c].prefill_routing = session.routing_stats();
      }
      if (o.n_gen > 0) {
        session.reset();
        session.reset_routing_stats();
        std::mt19937 gen_rng(7);  // the same tokens in every repetition and configuration
        int32_t tok = prompt.empty() ? 1 : prompt[0];
        auto t0 = clock::now();
        for (int i = 0; i < o.n_gen; ++i) {
          const float* logits = session.eval({&tok, 1}, false);
          // The logits are still read (as a sampler would), the next token is random.
          tok = int32_t((uint32_t(ops::argmax(logits, model.hp.n_vocab)) + gen_rng()) % uint32_t(model.hp.n_vocab));
        }
        if (r) out[c].decode_all.push_back(o.n_gen / seconds(t0, clock::now()));
        if (model.hp.n_expert > 0) out[c].decode_routing = session.routing_stats();
      }
    }
    if (on_rep) on_rep(r + 1, o.reps + 1);
  }
  for (size_t c = 0; c < configs.size(); ++c) {
    out[c].prefill_tps = median(out[c].prefill_all);
    out[c].decode_tps = median(out[c].decode_all);
    const double experts = out[c].decode_routing.empty() ? -1.0 : mean_experts_used(out[c].decode_routing);
    out[c].decode_weight_bytes = decode_weight_bytes(model, configs[c], experts > 0 ? experts : -1.0);
  }
  return out;
}

}  // namespace mf
