#include "model/hparams.h"

#include <cmath>

#include "core/error.h"

namespace mf {

void HParams::validate(const std::string& label) const {
  auto positive = [&](const char* what, int v) {
    if (v <= 0) fail(label, ": ", what, " must be positive (got ", v, ")");
  };
  positive("n_vocab", n_vocab);
  positive("n_embd", n_embd);
  positive("n_layer", n_layer);
  positive("n_head", n_head);
  positive("n_head_kv", n_head_kv);
  positive("head_dim", head_dim);
  positive("n_ff", n_ff);
  if (n_head % n_head_kv) fail(label, ": n_head ", n_head, " is not a multiple of n_head_kv ", n_head_kv);
  if (head_dim % 2) fail(label, ": head_dim ", head_dim, " must be even for RoPE");
  if (sliding_window < 0) fail(label, ": sliding_window must not be negative (got ", sliding_window, ")");
  if (swa_pattern < 0) fail(label, ": the sliding-window layer pattern must not be negative (got ", swa_pattern, ")");
  if (!(embd_scale > 0) || !(attn_scale >= 0) || !(rope_theta_swa >= 0))
    fail(label, ": embedding scale, attention scale and local RoPE base must be positive");
  if (!(rms_eps > 0) || !(rope_theta > 0)) fail(label, ": rms_eps and rope_theta must be positive");
  if (n_expert < 0 || n_expert > 4096) fail(label, ": expert count ", n_expert, " is out of range");
  if (n_expert > 0) {
    if (n_expert_used < 1 || n_expert_used > n_expert)
      fail(label, ": experts used per token ", n_expert_used, " must be in 1..", n_expert, " (the expert count)");
    positive("expert FFN width", n_ff_exp);
    if (n_expert_clusters < 0 || (n_expert_clusters > 0 && n_expert % n_expert_clusters))
      fail(label, ": expert clusters ", n_expert_clusters, " must divide the ", n_expert, " experts");
    if (!(expert_top_p >= 0.0f && expert_top_p <= 1.0f)) fail(label, ": expert top-p ", expert_top_p, " is outside [0, 1]");
    if (expert_max_used < 0 || expert_max_used > n_expert) fail(label, ": expert ceiling ", expert_max_used, " is outside 0..", n_expert);
    if (!(expert_weights_scale > 0)) fail(label, ": expert weights scale must be positive (got ", expert_weights_scale, ")");
    if (n_ff_shexp < 0) fail(label, ": shared expert width must not be negative (got ", n_ff_shexp, ")");
    if (n_layer_dense_lead < 0 || n_layer_dense_lead > n_layer)
      fail(label, ": leading dense layers ", n_layer_dense_lead, " is outside 0..", n_layer);
  }
}

bool HParams::is_moe_layer(int il) const {
  if (n_expert <= 0 || il < n_layer_dense_lead) return false;
  for (int d : dense_layers)
    if (d == il) return false;
  return true;
}

std::vector<float> rope_inv_freq(const HParams& hp, bool swa) {
  int half = hp.head_dim / 2;
  std::vector<float> inv(half);
  const bool local = swa && hp.rope_theta_swa > 0;
  const double theta = local ? hp.rope_theta_swa : hp.rope_theta;
  for (int i = 0; i < half; ++i) inv[i] = float(std::pow(theta, -2.0 * i / hp.head_dim));
  if (local) return inv;
  if (hp.rope_scaling.type == "linear")
    for (float& f : inv) f = float(f / hp.rope_scaling.factor);
  if (hp.rope_scaling.type == "llama3") {
    // Llama 3.1: long wavelengths are slowed by `factor`, short ones kept, smooth in between.
    const RopeScaling& s = hp.rope_scaling;
    double low_wavelen = s.original_max_pos / s.low_freq_factor;
    double high_wavelen = s.original_max_pos / s.high_freq_factor;
    for (float& f : inv) {
      double wavelen = 2 * M_PI / f;
      if (wavelen < high_wavelen) continue;
      if (wavelen > low_wavelen) {
        f = float(f / s.factor);
      } else {
        double smooth = (s.original_max_pos / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
        f = float((1 - smooth) * f / s.factor + smooth * f);
      }
    }
  }
  return inv;
}

}  // namespace mf
