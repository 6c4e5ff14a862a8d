// Prefill and decode throughput of a model (or of experts run in its place), measured as
// medians over repetitions, configurations interleaved so that they share machine noise.
#pragma once
#include <functional>
#include <vector>

#include "core/thread_pool.h"
#include "model/model.h"
#include "ops/moe_routing.h"

namespace mf {

struct ThroughputOptions {
  int n_prompt = 128;  // prefill test: one batch of random tokens
  int n_gen = 64;      // decode test: random tokens one at a time from an empty context (as llama-bench tg;
                       // greedy text can loop on a few tokens, which would keep a MoE's few experts in cache)
  int reps = 5;        // after one discarded warm-up repetition
};

struct Throughput {
  double prefill_tps = 0, decode_tps = 0;  // medians
  std::vector<double> prefill_all, decode_all;
  int64_t decode_weight_bytes = 0;         // weight bytes one decode step reads
  // Token-routed MoE: routing statistics per layer of one prefill and one decode repetition
  // (empty for dense models); decode_weight_bytes counts the decode's mean experts per token.
  std::vector<LayerRoutingStats> prefill_routing, decode_routing;
};

// configs: layers to run (nullptr: dense). on_rep(done, total) reports progress.
std::vector<Throughput> measure_throughput(const Model& model, const std::vector<const std::vector<LayerWeights>*>& configs,
                                           const ThroughputOptions& opts, ThreadPool& pool,
                                           const std::function<void(int, int)>& on_rep = {});

// Bytes of weights one decode step reads: every matrix once, plus one embedding row; of a
// token-routed MoE layer, the router, the shared expert and experts_per_token experts
// (< 0: the model's routing top-k). Of a MoDE model, the gates and the expert layers that
// model.mode_expert runs.
int64_t decode_weight_bytes(const Model& model, const std::vector<LayerWeights>* layers = nullptr,
                            double experts_per_token = -1);

double median(std::vector<double> v);

}  // namespace mf
