#include "model/gguf_export.h"

#include <cmath>
#include <cstring>

#include "core/error.h"
#include "model/loaders.h"
#include "ops/ops.h"

namespace mf {

std::vector<int64_t> rope_row_order(int64_t rows, int head_dim, bool to_interleaved) {
  std::vector<int64_t> src(rows);
  const int half = head_dim / 2;
  for (int64_t r = 0; r < rows; ++r) {
    int64_t h = r / head_dim, k = r % head_dim;
    int64_t from = to_interleaved ? (k % 2) * half + k / 2   // dest (2i+j) <- source (j*half+i)
                                  : (k % half) * 2 + k / half;  // dest (j*half+i) <- source (2i+j)
    src[r] = h * head_dim + from;
  }
  return src;
}

namespace {

// GGUF general.file_type (llama_ftype) of a model whose matrices are mostly `t`.
uint32_t ggml_file_type(DType t) {
  switch (t) {
    case DType::F32: return 0;
    case DType::F16: return 1;
    case DType::Q4_0: return 2;
    case DType::Q4_1: return 3;
    case DType::Q8_0: return 7;
    case DType::Q5_0: return 8;
    case DType::Q5_1: return 9;
    case DType::Q2_K: return 10;
    case DType::Q3_K: return 12;  // Q3_K_M
    case DType::Q4_K: return 15;  // Q4_K_M
    case DType::Q5_K: return 17;  // Q5_K_M
    case DType::Q6_K: return 18;
    case DType::BF16: return 32;
    default: return 0;
  }
}

class Exporter {
 public:
  Exporter(const Model& m, TypePolicy types, uint32_t file_type) : m_(m), types_(std::move(types)), file_type_(file_type) {}

  // Re-encodes `v` (2-D weights to the policy's type, 1-D to f32), optionally reordering rows.
  void add(const std::string& name, TensorRole role, int layer, const TensorView& v,
           const std::vector<int64_t>* row_order = nullptr) {
    if (!v.data) return;
    if (v.n_dims == 1 && row_order) {  // a bias: reorder its elements as rows of one column
      TensorView col = make_view(v.dtype, {v.shape[0], 1}, v.data);
      add_reordered(name, col, DType::F32, row_order, v);
      return;
    }
    DType dst = v.n_dims >= 2 ? types_(TensorToWrite{name, role, layer, &v}) : DType::F32;
    if (v.cols() % block_elems(dst)) dst = DType::F16;
    if (dst == v.dtype && !row_order) {
      w_.add_tensor(name, v);
      return;
    }
    add_reordered(name, v, dst, row_order, v);
  }

  // Writes `v` re-encoded as `dst` with rows taken in `row_order`, stored with `shape_of`'s shape.
  void add_reordered(const std::string& name, const TensorView& v, DType dst, const std::vector<int64_t>* row_order,
                     const TensorView& shape_of) {
    std::vector<uint8_t> buf(size_t(v.rows()) * row_bytes(dst, v.cols()));
    std::vector<float> row(v.cols());  // [n_in]
    for (int64_t r = 0; r < v.rows(); ++r) {
      int64_t src = row_order ? (*row_order)[r] : r;
      ref::dequantize_row(v.dtype, v.row(src), row.data(), v.cols());
      ref::quantize_row(dst, row.data(), buf.data() + r * row_bytes(dst, v.cols()), v.cols());
    }
    TensorView out = shape_of;
    out.dtype = dst;
    w_.keep(std::move(buf));
    out.data = w_.last_kept().data();
    w_.add_tensor(name, out);
  }

  // The experts' matrices as one [n_expert, rows, cols] tensor (llama.cpp's ffn_*_exps): a
  // view when they already lie back to back (a GGUF source), else their rows copied together.
  void add_experts(const std::string& name, TensorRole role, int layer, const std::vector<const TensorView*>& ex) {
    const TensorView& first = *ex[0];
    bool contiguous = true;
    for (size_t e = 0; e < ex.size(); ++e) {
      if (ex[e]->dtype != first.dtype || ex[e]->shape != first.shape)
        fail("export: expert ", e, " of '", name, "' differs in type or shape from expert 0");
      contiguous &= ex[e]->data == first.row(int64_t(e) * first.rows());
    }
    TensorView merged = make_view(first.dtype, {int64_t(ex.size()), first.shape[0], first.shape[1]}, first.data);
    if (!contiguous) {
      std::vector<uint8_t> buf(first.nbytes() * ex.size());
      for (size_t e = 0; e < ex.size(); ++e) std::memcpy(buf.data() + e * first.nbytes(), ex[e]->data, first.nbytes());
      w_.keep(std::move(buf));
      merged.data = w_.last_kept().data();
    }
    add(name, role, layer, merged);
  }

  void write_moe_metadata(const std::string& a) {
    const HParams& hp = m_.hp;
    w_.set_u32(a + "expert_count", uint32_t(hp.n_expert));
    w_.set_u32(a + "expert_used_count", uint32_t(hp.n_expert_used));
    w_.set_u32(a + "expert_feed_forward_length", uint32_t(hp.n_ff_exp));
    if (hp.n_ff_shexp > 0 && m_.arch.name == "deepseek") {
      if (hp.n_ff_shexp % hp.n_ff_exp) fail("export: a deepseek shared expert must be a whole number of experts wide");
      w_.set_u32(a + "expert_shared_count", uint32_t(hp.n_ff_shexp / hp.n_ff_exp));
    } else if (hp.n_ff_shexp > 0) {
      w_.set_u32(a + "expert_shared_feed_forward_length", uint32_t(hp.n_ff_shexp));
    }
    if (hp.expert_weights_scale != 1.0f) w_.set_f32(a + "expert_weights_scale", hp.expert_weights_scale);
    // moeforge-trained routing that llama.cpp does not have.
    if (hp.n_expert_clusters > 0) w_.set_u32("moeforge.expert_clusters", uint32_t(hp.n_expert_clusters));
    if (hp.expert_top_p > 0) w_.set_f32("moeforge.expert_top_p", hp.expert_top_p);
    if (hp.expert_max_used > 0) w_.set_u32("moeforge.expert_max_used", uint32_t(hp.expert_max_used));
    if (hp.n_layer_dense_lead > 0) w_.set_u32(a + "leading_dense_block_count", uint32_t(hp.n_layer_dense_lead));
    // llama.cpp fixes the renormalisation per architecture (llama: on; qwen2moe, olmoe: off)
    // and reads no key for these three; moeforge's reader honours it.
    if (hp.expert_weights_norm != (m_.arch.name == "llama")) w_.set_bool(a + "expert_weights_norm", hp.expert_weights_norm);
  }

  // MoDE: the expert layers are blocks after the backbone's (block_count counts them), the
  // layout in moeforge.mode.*, the gates f32 (docs/mode.md). llama.cpp refuses such a file
  // (the gate tensors are not its own), rather than running the experts as extra layers.
  void write_mode() {
    const ModeLayout& md = m_.mode;
    w_.set_array("moeforge.mode.experts", GgufType::STRING, nlohmann::json(md.experts));
    w_.set_u32("moeforge.mode.backbone_block_count", uint32_t(md.n_layer_backbone));
    w_.set_u32("moeforge.mode.blocks", uint32_t(md.n_block));
    w_.set_u32("moeforge.mode.layers_per_expert", uint32_t(md.layers_per_expert));
    w_.set_u32("moeforge.mode.gate_top_k", uint32_t(md.gate_top_k));
    for (int b = 0; b < md.n_block; ++b) {
      w_.add_tensor("mode_gate." + std::to_string(b) + ".weight", md.gate_w[size_t(b)]);
      w_.add_tensor("mode_gate." + std::to_string(b) + ".bias", md.gate_b[size_t(b)]);
    }
  }

  void write(const std::string& path, const GgufExtra& extra) {
    const HParams& hp = m_.hp;
    const std::string a = m_.arch.name + ".";
    w_.set_string("general.architecture", m_.arch.name);
    w_.set_string("general.name", "moeforge export");
    w_.set_u32("general.file_type", file_type_);
    w_.set_u32(a + "context_length", uint32_t(hp.n_ctx_train));
    w_.set_u32(a + "embedding_length", uint32_t(hp.n_embd));
    w_.set_u32(a + "block_count", uint32_t(hp.n_layer));
    w_.set_u32(a + "feed_forward_length", uint32_t(hp.n_ff));
    w_.set_u32(a + "attention.head_count", uint32_t(hp.n_head));
    w_.set_u32(a + "attention.head_count_kv", uint32_t(hp.n_head_kv));
    w_.set_u32(a + "rope.dimension_count", uint32_t(hp.head_dim));
    if (hp.head_dim * hp.n_head != hp.n_embd) {
      w_.set_u32(a + "attention.key_length", uint32_t(hp.head_dim));
      w_.set_u32(a + "attention.value_length", uint32_t(hp.head_dim));
    }
    w_.set_f32(a + "attention.layer_norm_rms_epsilon", hp.rms_eps);
    w_.set_f32(a + "rope.freq_base", hp.rope_theta);
    if (hp.sliding_window > 0) w_.set_u32(a + "attention.sliding_window", uint32_t(hp.sliding_window));
    // llama.cpp's key for a non-default logit scale (its gemma3 ignores it and uses 1/sqrt(head_dim),
    // which all Gemma 3 sizes but 27B have).
    if (hp.attn_scale > 0 && hp.attn_scale != 1.0f / std::sqrt(float(hp.head_dim)))
      w_.set_f32(a + "attention.scale", hp.attn_scale);
    // llama.cpp fixes gemma3's layer pattern (6) and local RoPE base (10000): other values cannot be written.
    if (hp.swa_pattern > 0 && (m_.arch.name != "gemma3" || hp.swa_pattern != 6 || hp.rope_theta_swa != 10000.0f))
      fail("export: this sliding-window layer pattern cannot be written to GGUF (gemma3 with pattern 6 and local "
           "RoPE base 10000 only)");
    w_.set_u32(a + "vocab_size", uint32_t(hp.n_vocab));
    if (hp.n_expert > 0) write_moe_metadata(a);
    // llama.cpp sizes the vocabulary from the token list: pad it to the embedding rows
    // with unused placeholders, as its own converter does.
    TokenizerSpec spec = m_.require_tokenizer().spec();
    for (int32_t id = int32_t(spec.tokens.size()); id < hp.n_vocab; ++id) {
      spec.tokens.push_back("[PAD" + std::to_string(id) + "]");
      spec.types.push_back(TokenType::Unused);
      if (!spec.scores.empty()) spec.scores.push_back(-1e9f);
    }
    tokenizer_spec_to_gguf(spec, w_);

    const Weights& w = m_.w;
    add("token_embd.weight", TensorRole::TokEmbd, -1, w.tok_embd);
    add("output_norm.weight", TensorRole::OutputNorm, -1, w.output_norm);
    if (!hp.tied_embeddings) add("output.weight", TensorRole::Output, -1, w.output);
    // Scaled RoPE frequencies travel as divisors, as llama.cpp expects.
    HParams unscaled = hp;
    unscaled.rope_scaling = RopeScaling{};
    std::vector<float> base = rope_inv_freq(unscaled);
    std::vector<float> scaled = m_.inv_freq();
    if (base != scaled) {
      std::vector<float> factors(base.size());
      for (size_t i = 0; i < base.size(); ++i) factors[i] = base[i] / scaled[i];
      std::vector<uint8_t> bytes(factors.size() * 4);
      std::memcpy(bytes.data(), factors.data(), bytes.size());
      w_.keep(std::move(bytes));
      w_.add_tensor("rope_freqs.weight", make_view(DType::F32, {int64_t(factors.size())}, w_.last_kept().data()));
    }

    bool permute = hp.rope_neox != m_.arch.gguf_rope_neox;
    std::vector<int64_t> q_order = rope_row_order(hp.n_embd_q(), hp.head_dim, hp.rope_neox);
    std::vector<int64_t> k_order = rope_row_order(hp.n_embd_kv(), hp.head_dim, hp.rope_neox);
    for (int il = 0; il < hp.n_layer; ++il) {
      const LayerWeights& l = w.layers[il];
      auto put = [&](TensorRole role, const TensorView& v, const std::vector<int64_t>* order = nullptr) {
        if (v.data) add(format_name(tensor_name(m_.arch.name, role).gguf, il), role, il, v, order);
      };
      put(TensorRole::AttnNorm, l.attn_norm);
      put(TensorRole::Wq, l.wq, permute ? &q_order : nullptr);
      put(TensorRole::Wk, l.wk, permute ? &k_order : nullptr);
      put(TensorRole::Wv, l.wv);
      put(TensorRole::Wo, l.wo);
      put(TensorRole::Bq, l.bq, permute ? &q_order : nullptr);
      put(TensorRole::Bk, l.bk, permute ? &k_order : nullptr);
      put(TensorRole::Bv, l.bv);
      put(TensorRole::Bo, l.bo);
      put(TensorRole::AttnQNorm, l.q_norm);
      put(TensorRole::AttnKNorm, l.k_norm);
      put(TensorRole::AttnPostNorm, l.attn_post_norm);
      put(TensorRole::FfnNorm, l.ffn_norm);
      put(TensorRole::FfnGate, l.ffn_gate);
      put(TensorRole::FfnUp, l.ffn_up);
      put(TensorRole::FfnDown, l.ffn_down);
      put(TensorRole::FfnPostNorm, l.ffn_post_norm);
      if (l.is_moe()) {
        // The router stays f32, as llama.cpp's quantiser keeps ffn_gate_inp.
        const std::string router = format_name(tensor_name(m_.arch.name, TensorRole::FfnGateInp).gguf, il);
        add_reordered(router, l.ffn_gate_inp, DType::F32, nullptr, l.ffn_gate_inp);
        std::vector<const TensorView*> gate, up, down;
        for (const ExpertWeights& e : l.experts) gate.push_back(&e.gate), up.push_back(&e.up), down.push_back(&e.down);
        auto name_of = [&](TensorRole role) { return format_name(tensor_name(m_.arch.name, role).gguf, il); };
        add_experts(name_of(TensorRole::FfnGateExps), TensorRole::FfnGateExps, il, gate);
        add_experts(name_of(TensorRole::FfnUpExps), TensorRole::FfnUpExps, il, up);
        add_experts(name_of(TensorRole::FfnDownExps), TensorRole::FfnDownExps, il, down);
        put(TensorRole::FfnGateShexp, l.shared.gate);
        put(TensorRole::FfnUpShexp, l.shared.up);
        put(TensorRole::FfnDownShexp, l.shared.down);
        put(TensorRole::FfnGateInpShexp, l.ffn_gate_inp_shexp);
        put(TensorRole::FfnClusterGate, l.ffn_cluster_gate);
        put(TensorRole::FfnClusterGateB, l.ffn_cluster_gate_b);
      }
    }
    if (m_.mode.enabled()) write_mode();
    if (extra) extra(w_);
    w_.write(path);
  }

 private:
  const Model& m_;
  TypePolicy types_;
  uint32_t file_type_;
  GgufWriter w_;
};

}  // namespace

void export_gguf(const Model& model, const std::string& out_path, DType type, const GgufExtra& extra) {
  Exporter(model, uniform_types(type), ggml_file_type(type)).write(out_path, extra);
}

void export_gguf(const Model& model, const std::string& out_path, const TypePolicy& types, uint32_t file_type,
                 const GgufExtra& extra) {
  Exporter(model, types, file_type).write(out_path, extra);
}

uint32_t gguf_file_type_of(DType t) { return ggml_file_type(t); }

}  // namespace mf
