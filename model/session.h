// An inference session over a Model: KV cache, scratch buffers, forward pass and hooks.
// A session holds n_slots independent sequences (each its own KV cache region, position and
// optional layer override); step() runs tokens of several of them in one batched forward pass
// (continuous batching), eval() is the single-sequence API on slot 0.
#pragma once
#include <functional>
#include <span>
#include <string_view>
#include <vector>

#include "core/thread_pool.h"
#include "model/model.h"
#include "model/moe_ffn.h"

namespace mf {

// Named intermediate values of a block, reported to hooks during the forward pass.
// Hook points: "attn_in" [n_tokens, n_embd] (normed attention input), "attn_out" [n_tokens, n_embd_q]
// (attention output, the input of wo), "ffn_resid" [n_tokens, n_embd] (the residual stream
// entering the FFN block), "ffn_in" [n_tokens, n_embd] (normed FFN input),
// "ffn_gate_act" [n_tokens, n_ff] (act(gate)*up, the input of ffn_down; n_ff is the running
// expert's width), "ffn_out" [n_tokens, n_embd] (the FFN's output, before any post-FFN norm),
// "block_out" [n_tokens, n_embd]; token-routed MoE layers instead of
// "ffn_gate_act": "moe_weights" [n_tokens, n_expert] (each chosen expert's combine weight, 0 elsewhere).
// MoDE models: "mode_gate" [n_tokens, 1 + n_expert] with layer = the block (the gate weights,
// column 0 the backbone), and the expert layers report under their own layer indices.
// A step over several slots reports each point once per group of slots sharing a layer
// override (the rows of those slots, in step order); a single sequence gives one event.
struct HookEvent {
  std::string_view name;
  int layer;
  const float* data;  // [n_tokens, width], valid only during the call
  int64_t n_tokens;
  int64_t width;
};
using Hook = std::function<void(const HookEvent&)>;

// A per-slot addition to the block's linear maps: a LoRA adapter or a routed library of them
// (adapters/lora_library.h). The base matmul runs once over all rows of a step; each slot's
// rows then get their own update (S-LoRA style), so slots with different adapters share a batch.
// Maps that read the same input come together (q/k/v, gate/up), so an update can run them in
// one parallel pass.
struct AdaptedMap {
  TensorRole role;  // Wq, Wk, Wv, Wo, FfnGate, FfnUp or FfnDown
  float* y;         // [n, n_out], the base matmul's output
  int64_t n_out;
};

class LinearAdapter {
 public:
  virtual ~LinearAdapter() = default;
  // For each map: y [n, n_out] += its update of x [n, n_in], in layer il.
  virtual void apply(int il, std::span<const AdaptedMap> maps, const float* x, int64_t n, int64_t n_in,
                     ThreadPool& pool) = 0;
};

// Arithmetic choices of the forward pass. The defaults follow llama.cpp's CPU defaults, so that
// greedy decoding agrees with it on near-ties: activations quantised for quantised weights (q8_0,
// q8_1 or q8_K per weight type) and attention inputs (q, k, v) rounded to f16, as llama.cpp's
// f16 KV cache and its f16 K.Q product do. All off: f32 throughout (what transformers computes
// on dequantised weights).
struct Numerics {
  bool quantized_acts = true;
  bool f16_attention = true;
};

// Which logits a step returns for one sequence.
enum class LogitRows { None, Last, All };

// One sequence's part of a batched step: tokens appended at its slot's position.
struct SeqInput {
  int slot = 0;
  std::span<const int32_t> tokens;
  LogitRows logits = LogitRows::Last;
};

class Session {
 public:
  // n_ctx: KV cache capacity in tokens per slot (<= 0: the model's training context).
  // n_slots: independent sequences (KV memory grows linearly with it).
  Session(const Model& model, int n_ctx, ThreadPool& pool, int n_slots = 1);

  // Runs tokens at positions n_past().. of slot 0 and appends them to its cache. Returns logits
  // [n_tokens, n_vocab] if all_logits, else [1, n_vocab] for the last token; valid until the
  // next call. Throws mf::Error if the cache would overflow or a token id is out of range.
  const float* eval(std::span<const int32_t> tokens, bool all_logits);

  // One batched forward step over several slots (each slot at most once, total tokens at
  // most kMaxBatch). The matmuls run over the concatenated rows of all sequences (one group
  // per distinct layer override), attention runs per slot against its own cache. Returns
  // logits [n_rows_out, n_vocab]: for each input in order, all its tokens' rows (All), its last
  // token's row (Last) or none (None); valid until the next call. Validates everything before
  // running: on mf::Error (bad slot, repeated slot, overflow, token id, too many tokens) no
  // slot has changed.
  const float* step(std::span<const SeqInput> batch);

  // Layer-by-layer work (a sequential re-fit): resets slot 0, then runs blocks first..last on
  // x [n_tokens, n_embd], the residual stream entering block `first` at positions 0..n_tokens-1,
  // and overwrites x with the stream leaving block `last`. Hooks fire as in eval(). Slot 0 then
  // holds the tokens in those blocks' caches only: reset it before eval(). Throws mf::Error on
  // a bad block range or more than kMaxBatch or n_ctx tokens.
  void run_blocks(float* x, int64_t n_tokens, int first, int last);
  // The residual stream entering block 0: x [tokens, n_embd] (the token embeddings).
  void embed(std::span<const int32_t> tokens, float* x) const;

  int n_slots() const { return int(slots_.size()); }
  int64_t n_past(int slot = 0) const { return slots_.at(slot).n_past; }
  int64_t n_ctx() const { return n_ctx_; }
  // Empties a slot's cache and its MoDE gate tally (its layer override stays).
  void reset(int slot = 0);
  // Makes slot dst hold the first n cached tokens of slot src (their K and V in every layer),
  // so a shared prompt prefix is computed once and continued in several slots. The caller
  // keeps dst's layer override equal to the one src's prefix ran with. Throws mf::Error on a
  // bad slot or n > n_past(src).
  void copy_prefix(int src, int dst, int64_t n);
  void set_hook(Hook hook) { hook_ = std::move(hook); }
  // Runs the blocks with these weights instead of the model's (an expert: same shapes except a
  // possibly narrower FFN, ffn_gate/up [n_ff_e, n_embd], ffn_down [n_embd, n_ff_e] with
  // n_ff_e <= n_ff, and optionally ffn_down_b [n_embd] f32). nullptr restores the dense model. The vector must outlive its use; the
  // KV cache is kept, so callers switching experts mid-sequence get the mixed computation.
  // Without a slot: slot 0 (the single-sequence API).
  void set_layers(const std::vector<LayerWeights>* layers) { set_layers(0, layers); }
  void set_layers(int slot, const std::vector<LayerWeights>* layers);
  const std::vector<LayerWeights>* layers_override(int slot = 0) const { return slots_.at(slot).layers; }
  const Model& model() const { return model_; }
  // Expert routing of a token-routed MoE model, per slot (each starts with model().routing).
  // Throws mf::Error naming the problem if p does not fit the model (K above the expert count,
  // p outside (0, 1], a dense model).
  void set_routing(int slot, const RouteParams& p);
  void set_routing(const RouteParams& p) {
    for (int s = 0; s < n_slots(); ++s) set_routing(s, p);
  }
  const RouteParams& routing(int slot = 0) const { return slots_.at(slot).routing; }
  // What a slot of a MoDE model runs (each starts with model().mode_expert): kModeGated (the
  // gate over the backbone and every expert), kModeBackbone (the backbone alone: the original
  // model) or an expert's index (that expert beside the backbone, the gate restricted to the
  // two). Experts a step's slots do not use are not computed, so their caches miss those rows:
  // reset the slot when changing it mid-sequence. Throws mf::Error on a model without MoDE or a
  // choice outside it.
  void set_mode_expert(int slot, int choice);
  int mode_expert(int slot = 0) const { return slots_.at(slot).mode_expert; }
  // MoDE: the gate weights of the tokens the slot computed since its last reset (empty sums on
  // other models). Tokens a prefix copy brought in were tallied in their own slot.
  const ModeGateTally& mode_gates(int slot = 0) const { return slots_.at(slot).gates; }
  // Adapter of a slot (each starts with model().adapter; nullptr: the base model). Not owned:
  // it must outlive its use. A slot with an expert override (set_layers) takes no FFN update,
  // since the expert's FFN is narrower than the one the adapter was made for.
  void set_adapter(int slot, LinearAdapter* adapter);
  LinearAdapter* adapter(int slot = 0) const { return slots_.at(slot).adapter; }
  // Routing statistics per layer since the session began or the last reset (empty entries
  // for dense layers; all empty for a dense model).
  const std::vector<LayerRoutingStats>& routing_stats() const { return routing_stats_; }
  void reset_routing_stats();
  void set_numerics(const Numerics& n) { numerics_ = n; }
  const Numerics& numerics() const { return numerics_; }

  // Largest number of tokens processed in one forward step; eval() splits longer inputs.
  static constexpr int64_t kMaxBatch = 256;

 private:
  struct Slot {
    int64_t n_past = 0;
    const std::vector<LayerWeights>* layers = nullptr;  // nullptr: the model's own
    RouteParams routing;
    LinearAdapter* adapter = nullptr;
    int mode_expert = kModeGated;
    ModeGateTally gates;
  };
  // Rows [row0, row0 + n) of the step belong to one sequence.
  struct Placed {
    int slot;
    int64_t row0, n;
    const int32_t* tokens;
    LogitRows logits;
  };
  // Rows [row0, row1) share one layer override.
  struct Group {
    int64_t row0, row1;
    const std::vector<LayerWeights>* layers;
  };

  void validate(std::span<const SeqInput> batch) const;
  // Adds each slot's adapter update of the maps to the rows of group g: x and each map's y point
  // at the group's first row ([n, n_in] and [n, n_out]).
  void adapt(const Group& g, int il, std::initializer_list<AdaptedMap> maps, const float* x, int64_t n_in);
  // Lays the inputs out as rows grouped by override, runs all blocks, writes logits (in input
  // order, as step() documents) to logits_out when it is not null.
  void forward(std::span<const SeqInput> batch, float* logits_out);
  void run_layer(int il);
  // All layers of a step: in order, or MoDE's blocks with their experts and gates.
  void run_body();
  void run_mode_block(int b);
  // MoDE scratch: the block's input, the gated sum, the gate weights [n_rows, 1 + n_expert].
  std::vector<float> mode_in_, mode_acc_, mode_gate_;
  const LayerWeights& layer(const Group& g, int il) const {
    return g.layers ? (*g.layers)[il] : model_.w.layers[il];
  }
  void emit(std::string_view name, int layer, const float* data, int64_t n_tokens, int64_t width) const {
    if (hook_) hook_(HookEvent{name, layer, data, n_tokens, width});
  }
  float* k_cache(int il, int slot) { return k_cache_[il].data() + size_t(slot) * n_ctx_ * model_.hp.n_embd_kv(); }
  float* v_cache(int il, int slot) { return v_cache_[il].data() + size_t(slot) * n_ctx_ * model_.hp.n_embd_kv(); }

  const Model& model_;
  ThreadPool& pool_;
  int64_t n_ctx_;
  std::vector<Slot> slots_;
  std::vector<float> inv_freq_, inv_freq_swa_;         // [head_dim/2] global and sliding-window layers
  std::vector<std::vector<float>> k_cache_, v_cache_;  // per layer [n_slots, n_ctx, n_embd_kv]
  // Scratch for one step of up to kMaxBatch rows.
  std::vector<float> x_, xn_, q_, k_, v_, attn_, gate_, up_, logits_;
  std::vector<int32_t> pos_;
  std::vector<Placed> placed_;  // layout of the current step, grouped by override
  std::vector<Group> groups_;
  int64_t n_rows_ = 0;
  Hook hook_;
  Numerics numerics_;
  MoeScratch moe_;
  std::vector<LayerRoutingStats> routing_stats_;  // [n_layer]
  std::vector<RouteSegment> segments_;
  std::vector<float> moe_weights_;  // [n_rows, n_expert] for the "moe_weights" hook
  void emit_moe_weights(int il, int64_t n);
  // Matmuls through the numerics: quantised activations or f32.
  void matmul(const TensorView& w, const float* x, float* y, int64_t n) const;
  void matmul_group(std::span<const TensorView* const> ws, const float* x, std::span<float* const> ys, int64_t n) const;
};

}  // namespace mf
