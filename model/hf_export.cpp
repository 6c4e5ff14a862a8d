#include "model/hf_export.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "formats/safetensors.h"
#include "model/gguf_export.h"
#include "ops/ops.h"
#include "tokenizer/bpe_trainer.h"

namespace mf {
namespace fs = std::filesystem;

namespace {

// A tensor as f32 rows, in `order` (source row of each destination row) when given.
std::vector<float> f32_rows(const TensorView& v, const std::vector<int64_t>* order = nullptr) {
  const int64_t rows = v.n_dims == 1 ? 1 : v.shape[0], cols = v.n_dims == 1 ? v.shape[0] : v.shape[1];
  std::vector<float> out(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    ops::dequantize_row(v.dtype, v.row(order ? (*order)[size_t(r)] : r), out.data() + r * cols, cols);  // [cols]
  return out;
}

void check_exportable(const Model& m) {
  const HParams& hp = m.hp;
  const ArchInfo& a = m.arch;
  auto refuse = [&](const std::string& why) { fail(m.path, ": cannot write a Hugging Face directory: ", why); };
  if (a.name != "llama") refuse("architecture '" + a.name + "' (llama only)");
  if (a.qkv_bias || a.o_bias) refuse("attention biases");
  if (hp.n_expert > 0 || m.mode.enabled()) refuse("MoE or MoDE layers");
  if (hp.rope_scaling.type != "none" || !m.rope_freq_factors.empty()) refuse("scaled RoPE");
  if (hp.sliding_window > 0) refuse("sliding-window attention");
  if (!m.tokenizer) refuse("no tokenizer");
  if (m.tokenizer->spec().model != "gpt2") refuse("a tokenizer that is not byte-level BPE");
}

}  // namespace

void export_hf_dir(const Model& m, const std::string& dir) {
  check_exportable(m);
  if (fs::exists(dir)) fail(dir, ": already exists");
  const HParams& hp = m.hp;
  const std::string tmp = dir + ".tmp";
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  try {
    // Every tensor as f32; GGUF llama files hold q/k rows interleaved for RoPE.
    const std::vector<int64_t> q_order = rope_row_order(hp.n_embd_q(), hp.head_dim, /*to_interleaved=*/false);
    const std::vector<int64_t> k_order = rope_row_order(hp.n_embd_kv(), hp.head_dim, /*to_interleaved=*/false);
    const bool permute = !hp.rope_neox;
    std::vector<std::vector<float>> keep;
    std::vector<std::pair<std::string, TensorView>> tensors;
    auto put = [&](const std::string& name, const TensorView& v, const std::vector<int64_t>* order = nullptr) {
      keep.push_back(f32_rows(v, permute ? order : nullptr));
      TensorView out = v;
      out.dtype = DType::F32;
      out.data = keep.back().data();
      tensors.emplace_back(name, out);
    };
    put("model.embed_tokens.weight", m.w.tok_embd);
    put("model.norm.weight", m.w.output_norm);
    if (!hp.tied_embeddings) put("lm_head.weight", m.w.output);
    for (int il = 0; il < hp.n_layer; ++il) {
      const LayerWeights& l = m.w.layers[size_t(il)];
      const std::string p = "model.layers." + std::to_string(il) + ".";
      put(p + "input_layernorm.weight", l.attn_norm);
      put(p + "self_attn.q_proj.weight", l.wq, &q_order);
      put(p + "self_attn.k_proj.weight", l.wk, &k_order);
      put(p + "self_attn.v_proj.weight", l.wv);
      put(p + "self_attn.o_proj.weight", l.wo);
      put(p + "post_attention_layernorm.weight", l.ffn_norm);
      put(p + "mlp.gate_proj.weight", l.ffn_gate);
      put(p + "mlp.up_proj.weight", l.ffn_up);
      put(p + "mlp.down_proj.weight", l.ffn_down);
    }
    write_safetensors(tmp + "/model.safetensors", tensors);
    const TokenizerSpec& spec = m.tokenizer->spec();
    nlohmann::ordered_json cfg = {
        {"architectures", {"LlamaForCausalLM"}}, {"model_type", "llama"},
        {"vocab_size", hp.n_vocab}, {"hidden_size", hp.n_embd},
        {"intermediate_size", hp.n_ff}, {"num_hidden_layers", hp.n_layer},
        {"num_attention_heads", hp.n_head}, {"num_key_value_heads", hp.n_head_kv},
        {"head_dim", hp.head_dim}, {"max_position_embeddings", hp.n_ctx_train},
        {"rms_norm_eps", hp.rms_eps}, {"rope_theta", hp.rope_theta},
        {"hidden_act", "silu"}, {"attention_bias", false},
        {"mlp_bias", false}, {"tie_word_embeddings", hp.tied_embeddings},
        {"bos_token_id", spec.bos_id}, {"eos_token_id", spec.eos_id},
        {"torch_dtype", "float32"}};
    std::ofstream(tmp + "/config.json") << cfg.dump(2) << "\n";
    write_hf_tokenizer(spec, tmp);
    fs::rename(tmp, dir);
  } catch (...) {
    fs::remove_all(tmp);
    throw;
  }
}

}  // namespace mf
