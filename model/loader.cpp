// load_model(): picks the format from the path and finds the tokenizer beside the model.
#include <filesystem>
#include <cstring>
#include <fstream>

#include "core/error.h"
#include "model/loaders.h"

namespace mf {
namespace fs = std::filesystem;

namespace {

bool has_magic(const std::string& path, const char magic[4]) {
  std::ifstream f(path, std::ios::binary);
  char buf[4] = {};
  return f.read(buf, 4) && std::memcmp(buf, magic, 4) == 0;
}

// A llama2.c tokenizer next to the checkpoint: tokenizer.bin or a single tok*.bin.
std::string find_llama2c_tokenizer(const fs::path& dir, const fs::path& exclude) {
  if (fs::exists(dir / "tokenizer.bin")) return (dir / "tokenizer.bin").string();
  std::string found;
  for (auto& e : fs::directory_iterator(dir)) {
    std::string n = e.path().filename().string();
    if (e.path() != exclude && n.rfind("tok", 0) == 0 && e.path().extension() == ".bin") {
      if (!found.empty()) return "";  // ambiguous
      found = e.path().string();
    }
  }
  return found;
}

void load_tokenizer(Model& m, const std::string& path) {
  fs::path p(path);
  if (p.extension() == ".json") {
    TokenizerSpec spec = load_hf_tokenizer_spec(path);
    m.chat_template = spec.chat_template;
    m.tokenizer = make_tokenizer(std::move(spec));
  } else if (p.extension() == ".model") {
    m.tokenizer = load_sentencepiece_model(path);
  } else if (p.extension() == ".bin") {
    m.tokenizer = make_tokenizer(load_llama2c_tokenizer_spec(path, m.hp.n_vocab));
  } else {
    fail(path, ": unknown tokenizer format (expected tokenizer.json, .model or llama2.c .bin)");
  }
  m.tokenizer_source = path;
}

}  // namespace

std::unique_ptr<Model> load_model(const std::string& path, const LoadOptions& opts) {
  auto m = std::make_unique<Model>();
  m->path = path;
  fs::path p(path);
  if (!fs::exists(p)) fail(path, ": no such file or directory");
  fs::path dir = fs::is_directory(p) ? p : p.parent_path();
  if (dir.empty()) dir = ".";
  if (fs::is_directory(p)) {
    if (!fs::exists(p / "config.json")) fail(path, ": directory has no config.json");
    load_hf(*m, path);
  } else if (has_magic(path, "GGUF")) {
    load_gguf(*m, path);
  } else if (p.extension() == ".bin") {
    load_llama2c(*m, path);
  } else {
    fail(path, ": unrecognised model file (expected a Hugging Face directory, .gguf or llama2.c .bin)");
  }

  if (!opts.tokenizer_path.empty()) {
    load_tokenizer(*m, opts.tokenizer_path);
  } else if (!m->tokenizer) {
    if (fs::exists(dir / "tokenizer.json")) load_tokenizer(*m, (dir / "tokenizer.json").string());
    else if (fs::exists(dir / "tokenizer.model")) load_tokenizer(*m, (dir / "tokenizer.model").string());
    else if (std::string t = find_llama2c_tokenizer(dir, p); !t.empty()) load_tokenizer(*m, t);
  }
  if (m->tokenizer && m->tokenizer->n_vocab() > m->hp.n_vocab)
    fail(m->tokenizer_source, ": tokenizer has ", m->tokenizer->n_vocab(), " tokens, model only ", m->hp.n_vocab);
  return m;
}

const Tokenizer& Model::require_tokenizer() const {
  if (!tokenizer)
    fail(path, ": no tokenizer found (looked for tokenizer.json, tokenizer.model, tokenizer.bin, tok*.bin); pass --tokenizer PATH");
  return *tokenizer;
}

int64_t Model::n_params() const {
  int64_t n = w.tok_embd.numel() + w.output_norm.numel() + (hp.tied_embeddings ? 0 : w.output.numel());
  for (auto& l : w.layers)
    for (const TensorView* t : {&l.attn_norm, &l.wq, &l.wk, &l.wv, &l.wo, &l.bq, &l.bk, &l.bv, &l.bo, &l.q_norm,
                                &l.k_norm, &l.attn_post_norm, &l.ffn_norm, &l.ffn_gate, &l.ffn_up, &l.ffn_down,
                                &l.ffn_post_norm})
      if (t->data) n += t->numel();
  for (auto& l : w.layers) {
    for (const TensorView* t : {&l.ffn_gate_inp, &l.ffn_gate_inp_shexp, &l.shared.gate, &l.shared.up, &l.shared.down})
      if (t->data) n += t->numel();
    for (const ExpertWeights& e : l.experts) n += e.gate.numel() + e.up.numel() + e.down.numel();
  }
  return n;
}

std::vector<float> Model::inv_freq(bool swa) const {
  std::vector<float> f = rope_inv_freq(hp, swa);
  if (!rope_freq_factors.empty() && !(swa && hp.rope_theta_swa > 0))
    for (size_t i = 0; i < f.size(); ++i) f[i] /= rope_freq_factors[i];
  return f;
}

}  // namespace mf
