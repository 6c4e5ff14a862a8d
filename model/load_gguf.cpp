// GGUF (llama.cpp layout): hyperparameters from "<arch>.*" metadata, tokenizer from
// "tokenizer.ggml.*", tensors by their GGUF names.
#include <cmath>

#include "core/error.h"
#include "model/loaders.h"
#include "model/weight_binder.h"
#include "ops/ops.h"

namespace mf {

namespace {

int get_dim(const GgufFile& g, const std::string& key) {
  int64_t v = g.get_int(key);
  if (v <= 0 || v > (int64_t(1) << 30)) fail(g.label(), ": metadata '", key, "' = ", v, " is out of range");
  return int(v);
}

}  // namespace

// MoDE (moeforge-trained): block_count counts the expert layers after the backbone's.
static void read_mode_metadata(const GgufFile& g, Model& m, const std::string& path) {
  ModeLayout& md = m.mode;
  md.n_layer_backbone = int(g.get_int("moeforge.mode.backbone_block_count", 0));
  md.n_block = int(g.get_int("moeforge.mode.blocks", 0));
  md.layers_per_expert = int(g.get_int("moeforge.mode.layers_per_expert", 0));
  md.gate_top_k = int(g.get_int("moeforge.mode.gate_top_k", 0));
  try {
    for (auto& e : g.get_array("moeforge.mode.experts")) md.experts.push_back(e.get<std::string>());
  } catch (const std::exception&) {
    fail(path, ": moeforge.mode.experts must be an array of strings");
  }
  if (md.experts.empty() || md.n_block < 1 || md.layers_per_expert < 1 || md.gate_top_k < 0 || md.n_layer_backbone < 1 ||
      md.n_layer_backbone % md.n_block != 0 || md.n_layer_backbone + md.n_layer_extra() != m.hp.n_layer)
    fail(path, ": moeforge.mode.* does not fit the ", m.hp.n_layer, " blocks (", md.n_layer_backbone, " backbone, ",
         md.experts.size(), " experts x ", md.n_block, " blocks x ", md.layers_per_expert, " layers)");
  if (m.hp.sliding_window > 0 || m.hp.n_expert > 0) fail(path, ": MoDE needs a dense backbone with full attention");
}

void load_gguf(Model& m, const std::string& path) {
  auto g = std::shared_ptr<GgufFile>(GgufFile::open(path));
  m.storage.push_back(g);
  m.format = "gguf";
  std::string arch = g->get_string("general.architecture");
  m.arch = arch_from_gguf(arch, path);
  const std::string a = arch + ".";
  HParams& hp = m.hp;
  hp.arch = m.arch.name;
  hp.n_embd = get_dim(*g, a + "embedding_length");
  hp.n_layer = get_dim(*g, a + "block_count");
  hp.n_ff = get_dim(*g, a + "feed_forward_length");
  hp.n_head = get_dim(*g, a + "attention.head_count");
  hp.n_head_kv = g->has(a + "attention.head_count_kv") ? get_dim(*g, a + "attention.head_count_kv") : hp.n_head;
  hp.head_dim = g->has(a + "attention.key_length") ? get_dim(*g, a + "attention.key_length") : hp.n_embd / hp.n_head;
  hp.n_ctx_train = int(g->get_int(a + "context_length", 2048));
  hp.rms_eps = float(g->get_float(a + "attention.layer_norm_rms_epsilon", 1e-5));
  hp.rope_theta = float(g->get_float(a + "rope.freq_base", 10000.0));
  hp.rope_neox = m.arch.gguf_rope_neox;
  hp.sliding_window = int(g->get_int(a + "attention.sliding_window", 0));
  hp.attn_scale = float(g->get_float(a + "attention.scale", 0.0));
  if (m.arch.name == "gemma3") {
    // llama.cpp's constants for gemma3 (not stored in the file): every 6th layer is global,
    // the local layers use RoPE base 10000; embeddings are scaled by sqrt(n_embd).
    hp.swa_pattern = 6;
    hp.rope_theta_swa = 10000.0f;
    hp.embd_scale = std::sqrt(float(hp.n_embd));
  }
  if (g->get_string(a + "rope.scaling.type", "none") == "linear") {
    hp.rope_scaling.type = "linear";
    hp.rope_scaling.factor = float(g->get_float(a + "rope.scaling.factor", 1.0));
  }
  if (g->has(a + "expert_count") && g->get_int(a + "expert_count") > 0) {
    // Token-routed MoE: llama (Mixtral) renormalises the chosen experts' weights, qwen2moe
    // and olmoe do not, unless the file says otherwise.
    hp.n_expert = get_dim(*g, a + "expert_count");
    hp.n_expert_used = get_dim(*g, a + "expert_used_count");
    hp.n_ff_exp = g->has(a + "expert_feed_forward_length") ? get_dim(*g, a + "expert_feed_forward_length") : hp.n_ff;
    hp.n_ff_shexp = int(g->get_int(a + "expert_shared_feed_forward_length", 0));
    // DeepSeek counts its shared experts; they run as one FFN of that many experts' width.
    if (const int64_t shared = g->get_int(a + "expert_shared_count", 0); shared > 0) hp.n_ff_shexp = int(shared) * hp.n_ff_exp;
    const float scale = float(g->get_float(a + "expert_weights_scale", 0.0));
    hp.expert_weights_scale = scale > 0 ? scale : 1.0f;  // llama.cpp: 0 or absent means unscaled
    hp.n_expert_clusters = int(g->get_int("moeforge.expert_clusters", 0));
    hp.expert_top_p = float(g->get_float("moeforge.expert_top_p", 0.0));
    hp.expert_max_used = int(g->get_int("moeforge.expert_max_used", 0));
    hp.n_layer_dense_lead = int(g->get_int(a + "leading_dense_block_count", 0));
    hp.expert_weights_norm = g->get_bool(a + "expert_weights_norm", m.arch.name == "llama");
  }
  const GgufTensorInfo* embd = g->find_tensor("token_embd.weight");
  if (!embd) fail(path, ": missing tensor 'token_embd.weight'");
  hp.n_vocab = int(g->get_int(a + "vocab_size", embd->view.shape[0]));
  hp.tied_embeddings = g->find_tensor("output.weight") == nullptr;
  hp.validate(path);

  // llama3-style rope scaling is stored as per-frequency divisors.
  if (const GgufTensorInfo* rf = g->find_tensor("rope_freqs.weight")) {
    if (rf->view.numel() != hp.head_dim / 2 || rf->view.dtype != DType::F32)
      fail(path, ": tensor 'rope_freqs.weight' must be f32 [", hp.head_dim / 2, "]");
    m.rope_freq_factors.assign(rf->view.f32(), rf->view.f32() + hp.head_dim / 2);
  }

  TensorLookup lookup = [&](const std::string& name) {
    const GgufTensorInfo* t = g->find_tensor(name);
    return t ? t->view : TensorView{};
  };
  if (g->has("moeforge.mode.blocks")) read_mode_metadata(*g, m, path);
  bind_weights(m, lookup, /*use_gguf_names=*/true, path);
  bind_mode_gates(m, lookup, /*use_gguf_names=*/true, path);

  if (g->has("tokenizer.ggml.model")) {
    TokenizerSpec spec = tokenizer_spec_from_gguf(*g);
    m.chat_template = spec.chat_template;
    m.tokenizer = make_tokenizer(std::move(spec));
    m.tokenizer_source = path;
  }
}

TokenizerSpec tokenizer_spec_from_gguf(const GgufFile& g) {
  const std::string& label = g.label();
  TokenizerSpec s;
  s.model = g.get_string("tokenizer.ggml.model");
  if (s.model != "llama" && s.model != "gpt2") fail(label, ": unsupported tokenizer model '", s.model, "'");
  s.pre = g.get_string("tokenizer.ggml.pre", s.model == "gpt2" ? "gpt-2" : "default");
  try {
    for (auto& t : g.get_array("tokenizer.ggml.tokens")) s.tokens.push_back(t.get<std::string>());
    if (g.has("tokenizer.ggml.scores"))
      for (auto& x : g.get_array("tokenizer.ggml.scores")) s.scores.push_back(x.get<float>());
    if (g.has("tokenizer.ggml.token_type"))
      for (auto& x : g.get_array("tokenizer.ggml.token_type")) s.types.push_back(TokenType(x.get<int32_t>()));
    if (g.has("tokenizer.ggml.merges"))
      for (auto& x : g.get_array("tokenizer.ggml.merges")) s.merges.push_back(x.get<std::string>());
  } catch (const nlohmann::json::exception&) {
    fail(label, ": tokenizer arrays have the wrong element types");
  }
  if (s.types.empty()) s.types.assign(s.tokens.size(), TokenType::Normal);
  // llama.cpp treats end-of-generation tokens as control tokens whatever the file says (Gemma 3's
  // vocabulary has "</s>" as a user-defined token), so raw text never matches them.
  static const char* const kEndOfGeneration[] = {
      "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<end_of_turn>", "<|endoftext|>", "</s>",
      "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]", "<|end_of_text|>", "<end_of_utterance>"};
  for (size_t i = 0; i < s.tokens.size() && i < s.types.size(); ++i)
    if (s.types[i] == TokenType::Normal || s.types[i] == TokenType::UserDefined)
      for (const char* eog : kEndOfGeneration)
        if (s.tokens[i] == eog) s.types[i] = TokenType::Control;
  s.bos_id = int32_t(g.get_int("tokenizer.ggml.bos_token_id", -1));
  s.eos_id = int32_t(g.get_int("tokenizer.ggml.eos_token_id", -1));
  s.unk_id = int32_t(g.get_int("tokenizer.ggml.unknown_token_id", -1));
  s.pad_id = int32_t(g.get_int("tokenizer.ggml.padding_token_id", -1));
  // llama.cpp's defaults: SPM vocabularies add BOS, BPE ones do not unless told.
  s.add_bos = g.get_bool("tokenizer.ggml.add_bos_token", s.model == "llama");
  s.add_eos = g.get_bool("tokenizer.ggml.add_eos_token", false);
  s.add_space_prefix = g.get_bool("tokenizer.ggml.add_space_prefix", s.model == "llama");
  s.chat_template = g.get_string("tokenizer.chat_template", "");
  // llama.cpp's Llama-3 pre-tokenizer looks whole pre-tokens up before merging.
  s.ignore_merges = g.get_bool("moeforge.tokenizer.ignore_merges", s.pre == "llama-bpe");
  // Not in llama.cpp's schema: kept under our own keys so conversions round-trip.
  s.normalizer = g.get_string("moeforge.tokenizer.normalizer", "");
  s.add_prefix_space = g.get_bool("moeforge.tokenizer.add_prefix_space", false);
  if (g.has("moeforge.tokenizer.token_strip")) {
    try {
      for (auto& x : g.get_array("moeforge.tokenizer.token_strip")) s.added_flags.push_back(uint8_t(x.get<int32_t>() & 7));
    } catch (const nlohmann::json::exception&) {
      fail(label, ": moeforge.tokenizer.token_strip has the wrong element type");
    }
  }
  return s;
}

void tokenizer_spec_to_gguf(const TokenizerSpec& s, GgufWriter& w) {
  using json = nlohmann::json;
  w.set_string("tokenizer.ggml.model", s.model);
  if (s.model == "gpt2") w.set_string("tokenizer.ggml.pre", s.pre);
  w.set_array("tokenizer.ggml.tokens", GgufType::STRING, json(s.tokens));
  if (!s.scores.empty()) w.set_array("tokenizer.ggml.scores", GgufType::F32, json(s.scores));
  std::vector<int32_t> types;
  for (TokenType t : s.types) types.push_back(int32_t(t));
  w.set_array("tokenizer.ggml.token_type", GgufType::I32, json(types));
  if (!s.merges.empty()) w.set_array("tokenizer.ggml.merges", GgufType::STRING, json(s.merges));
  if (s.bos_id >= 0) w.set_u32("tokenizer.ggml.bos_token_id", uint32_t(s.bos_id));
  if (s.eos_id >= 0) w.set_u32("tokenizer.ggml.eos_token_id", uint32_t(s.eos_id));
  if (s.unk_id >= 0) w.set_u32("tokenizer.ggml.unknown_token_id", uint32_t(s.unk_id));
  if (s.pad_id >= 0) w.set_u32("tokenizer.ggml.padding_token_id", uint32_t(s.pad_id));
  w.set_bool("tokenizer.ggml.add_bos_token", s.add_bos);
  w.set_bool("tokenizer.ggml.add_eos_token", s.add_eos);
  if (s.model == "llama") w.set_bool("tokenizer.ggml.add_space_prefix", s.add_space_prefix);
  if (!s.chat_template.empty()) w.set_string("tokenizer.chat_template", s.chat_template);
  if (!s.added_flags.empty()) {  // HF added tokens' lstrip/rstrip/single_word; llama.cpp has no key for them
    std::vector<int32_t> flags(s.added_flags.begin(), s.added_flags.end());
    w.set_array("moeforge.tokenizer.token_strip", GgufType::I32, json(flags));
  }
  if (s.model == "gpt2") {
    w.set_bool("moeforge.tokenizer.ignore_merges", s.ignore_merges);
    w.set_bool("moeforge.tokenizer.add_prefix_space", s.add_prefix_space);
    if (!s.normalizer.empty()) w.set_string("moeforge.tokenizer.normalizer", s.normalizer);
  }
}

}  // namespace mf
