// moeforge inspect: what a model file holds.
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>

#include "model/model.h"
#include "tools/commands.h"
#include "tools/common.h"
#include "moe/moe_model.h"

namespace mf::cli {

namespace {

struct InspectOptions {
  std::string path, tokenizer;
  bool json = false;
};

void run_inspect(const InspectOptions& o) {
  LoadOptions lo;
  lo.tokenizer_path = o.tokenizer;
  std::unique_ptr<MoeModel> moe = MoeModel::is_moe_file(o.path) ? MoeModel::load(o.path) : nullptr;
  std::unique_ptr<Model> dense = moe ? nullptr : load_model(resolve_model_path(o.path), lo);
  const Model* m = moe ? &moe->model() : dense.get();
  const HParams& hp = m->hp;
  std::map<std::string, int64_t> dtype_params;
  auto count = [&](const TensorView& t) {
    if (t.data) dtype_params[std::string(dtype_name(t.dtype))] += t.numel();
  };
  count(m->w.tok_embd);
  if (!hp.tied_embeddings) count(m->w.output);
  for (auto& l : m->w.layers) {
    for (const TensorView* t : {&l.wq, &l.wk, &l.wv, &l.wo, &l.ffn_gate, &l.ffn_up, &l.ffn_down, &l.ffn_gate_inp,
                                &l.shared.gate, &l.shared.up, &l.shared.down})
      count(*t);
    for (const ExpertWeights& e : l.experts)
      for (const TensorView* t : {&e.gate, &e.up, &e.down}) count(*t);
  }
  nlohmann::ordered_json j = {
      {"path", m->path},
      {"format", m->format},
      {"architecture", m->arch.name},
      {"n_vocab", hp.n_vocab},
      {"n_embd", hp.n_embd},
      {"n_layer", hp.n_layer},
      {"n_head", hp.n_head},
      {"n_head_kv", hp.n_head_kv},
      {"head_dim", hp.head_dim},
      {"n_ff", hp.n_ff},
      {"n_ctx_train", hp.n_ctx_train},
      {"rms_eps", hp.rms_eps},
      {"rope_theta", hp.rope_theta},
      {"rope_scaling", hp.rope_scaling.type},
      {"rope_pairs", hp.rope_neox ? "rotate_half" : "interleaved"},
      {"tied_embeddings", hp.tied_embeddings},
      {"qkv_bias", m->w.layers[0].bq.data != nullptr},
      {"n_params", m->n_params()},
      {"matrix_params_by_dtype", dtype_params},
  };
  if (hp.n_expert > 0) {  // a token-routed MoE
    std::vector<int> moe_layers;
    for (int il = 0; il < hp.n_layer; ++il)
      if (m->w.layers[size_t(il)].is_moe()) moe_layers.push_back(il);
    j["moe_ffn"] = {{"n_expert", hp.n_expert},       {"n_expert_used", hp.n_expert_used},
                    {"n_ff_exp", hp.n_ff_exp},       {"n_ff_shexp", hp.n_ff_shexp},
                    {"renormalize", hp.expert_weights_norm}, {"moe_layers", moe_layers}};
  }
  if (const ModeLayout& md = m->mode; md.enabled())  // MoDE: n_layer counts the expert layers too
    j["mode"] = {{"experts", md.experts},
                 {"n_layer_backbone", md.n_layer_backbone},
                 {"blocks", md.n_block},
                 {"layers_per_expert", md.layers_per_expert},
                 {"gate", md.gate_top_k > 0 ? "top_" + std::to_string(md.gate_top_k) : std::string("dense")}};
  if (m->tokenizer) {
    const TokenizerSpec& s = m->tokenizer->spec();
    j["tokenizer"] = {{"source", m->tokenizer_source}, {"model", s.model}, {"pre", s.pre},
                      {"n_vocab", m->tokenizer->n_vocab()}, {"bos_id", s.bos_id}, {"eos_id", s.eos_id},
                      {"add_bos", s.add_bos}, {"chat_template", !m->chat_template.empty()}};
  } else {
    j["tokenizer"] = nullptr;
  }
  if (moe) {
    nlohmann::ordered_json experts = nlohmann::ordered_json::array();
    for (const Expert& e : moe->experts())
      experts.push_back({{"name", e.name}, {"n_ff", e.layers[0].ffn_gate.shape[0]}, {"ffn_bytes", e.ffn_bytes()}});
    const Router& r = moe->router();
    j["moe"] = {{"mode", moe->info().mode},
                {"density", moe->info().density},
                {"shared_fraction", moe->info().shared_fraction},
                {"domains", r.domains},
                {"subdomains", r.subdomains},
                {"router_embed_layers", r.embed_layers},
                {"router_hidden", r.n_hidden},
                {"router_threshold", r.threshold},
                {"reroute_every", moe->info().reroute_every},
                {"dense_weight_bytes", moe->dense_bytes()},
                {"expert_bytes", moe->expert_bytes()},
                {"experts", experts}};
  }
  if (o.json) {
    std::printf("%s\n", dump_json(j, 2).c_str());
    return;
  }
  for (auto& [k, v] : j.items()) std::printf("%-24s %s\n", k.c_str(), dump_json(v).c_str());
}

}  // namespace

void add_inspect(CLI::App& app) {
  auto o = std::make_shared<InspectOptions>();
  CLI::App* cmd = app.add_subcommand("inspect", "Show architecture, shapes, dtypes, parameter count and tokenizer");
  cmd->add_option("path", o->path, "Model: Hugging Face directory, .gguf file or llama2.c .bin")->required();
  cmd->add_option("--tokenizer", o->tokenizer, "Tokenizer file overriding the one found beside the model");
  cmd->add_flag("--json", o->json, "Print JSON");
  cmd->callback([o] { run_inspect(*o); });
}

}  // namespace mf::cli
