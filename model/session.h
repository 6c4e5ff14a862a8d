// An inference session over a Model: KV cache, scratch buffers, forward pass and hooks.
#pragma once
#include <functional>
#include <span>
#include <string_view>
#include <vector>

#include "core/thread_pool.h"
#include "model/model.h"

namespace mf {

// Named intermediate values of a block, reported to hooks during the forward pass.
// Hook points: "attn_in" [n_tokens, n_embd] (normed attention input), "attn_out" [n_tokens, n_embd_q]
// (attention output, the input of wo), "ffn_in" [n_tokens, n_embd] (normed FFN input),
// "ffn_gate_act" [n_tokens, n_ff] (silu(gate)*up, the input of ffn_down; n_ff is the running
// expert's width), "block_out" [n_tokens, n_embd].
struct HookEvent {
  std::string_view name;
  int layer;
  const float* data;  // [n_tokens, width], valid only during the call
  int64_t n_tokens;
  int64_t width;
};
using Hook = std::function<void(const HookEvent&)>;

class Session {
 public:
  // n_ctx: KV cache capacity in tokens (<= 0: the model's training context).
  Session(const Model& model, int n_ctx, ThreadPool& pool);

  // Runs tokens at positions n_past().. and appends them to the cache. Returns logits
  // [n_tokens, n_vocab] if all_logits, else [1, n_vocab] for the last token; valid until the
  // next call. Throws mf::Error if the cache would overflow or a token id is out of range.
  const float* eval(std::span<const int32_t> tokens, bool all_logits);

  int64_t n_past() const { return n_past_; }
  int64_t n_ctx() const { return n_ctx_; }
  void reset() { n_past_ = 0; }
  void set_hook(Hook hook) { hook_ = std::move(hook); }
  // Runs the blocks with these weights instead of the model's (an expert: same shapes except a
  // possibly narrower FFN, ffn_gate/up [n_ff_e, n_embd], ffn_down [n_embd, n_ff_e] with
  // n_ff_e <= n_ff). nullptr restores the dense model. The vector must outlive its use; the
  // KV cache is kept, so callers switching experts mid-sequence get the mixed computation.
  void set_layers(const std::vector<LayerWeights>* layers);
  const std::vector<LayerWeights>* layers_override() const { return layers_; }
  const Model& model() const { return model_; }

  // Largest number of tokens processed in one forward step; longer inputs are split.
  static constexpr int64_t kMaxBatch = 256;

 private:
  void forward_batch(const int32_t* tokens, int64_t n_tokens, bool all_logits, float* logits_out);
  void emit(std::string_view name, int layer, const float* data, int64_t n_tokens, int64_t width) const {
    if (hook_) hook_(HookEvent{name, layer, data, n_tokens, width});
  }

  const Model& model_;
  ThreadPool& pool_;
  int64_t n_ctx_;
  int64_t n_past_ = 0;
  std::vector<float> inv_freq_;                    // [head_dim/2]
  std::vector<std::vector<float>> k_cache_, v_cache_;  // per layer [n_ctx, n_embd_kv]
  // Scratch for one batch of up to kMaxBatch tokens.
  std::vector<float> x_, xn_, q_, attn_, gate_, up_, logits_;
  std::vector<int32_t> pos_;
  Hook hook_;
  const std::vector<LayerWeights>* layers_ = nullptr;
};

}  // namespace mf
