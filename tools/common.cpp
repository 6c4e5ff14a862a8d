#include "tools/common.h"


#include <algorithm>
#include <filesystem>
#include <sstream>

#include "adapters/glider.h"
#include "adapters/lora_library.h"
#include "calib/fingerprint.h"
#include "core/error.h"
#include "formats/atomic_file.h"
#include "model/gguf_export.h"
#include "model/quant_types.h"
#include "tools/model_registry.h"

namespace mf::cli {

void add_model_options(CLI::App* cmd, ModelOptions& o) {
  cmd->add_option("-m,--model", o.model,
                  "Model: Hugging Face directory, .gguf file, llama2.c .bin, or the name of a pulled model "
                  "(moeforge pull --list)")
      ->required();
  cmd->add_option("--tokenizer", o.tokenizer, "Tokenizer file overriding the one found beside the model");
  cmd->add_option("-t,--threads", o.threads, "Worker threads (default: all cores)")->check(CLI::NonNegativeNumber);
  auto* g = cmd->add_option_group("Expert routing", "Token-routed MoE models (Mixtral, Qwen2-MoE, OLMoE) and MoDE models");
  g->add_option("--experts-used", o.experts_used, "Experts per token (default: the checkpoint's top-k)");
  g->add_option("--expert-top-p", o.expert_top_p,
                "Dynamic top-p routing: per token, the fewest experts whose router probability reaches P (0 < P <= 1)");
  g->add_option("--min-experts", o.min_experts, "Top-p floor: at least this many experts per token (default 1)");
  g->add_option("--max-experts", o.max_experts, "Top-p ceiling: at most this many experts per token (default: all)");
  g->add_option("--mode-expert", o.mode_expert,
                "MoDE models (docs/mode.md): auto (the gate over the backbone and every expert; default), backbone "
                "(the original model alone), or an expert's name (it beside the backbone)");
  auto* l = cmd->add_option_group("LoRA", "LoRA adapters and libraries (PEFT directories, llama.cpp GGUF adapters)");
  l->add_option("--lora", o.lora,
                "Adapter [NAME=]PATH (repeat for a library): a PEFT directory or a GGUF LoRA; applied per token, "
                "never merged");
  l->add_option("--lora-route", o.lora_route,
                "How tokens pick adapters: arrow (per token and layer, training-free; the default for several), "
                "glider (arrow plus the prompt's prior from the adapters' descriptions), global (the prior's top-k "
                "for every token), gates (PHATGOOSE's learned gates), glider-gates (gates plus the prior), uniform (all, 1/N each), NAME, or NAME[:W],NAME[:W]");
  l->add_option("--lora-top-k", o.lora_top_k, "Adapters per token and map under arrow routing (default 2)")
      ->check(CLI::PositiveNumber);
  l->add_option("--lora-type", o.lora_type,
                "Precision of the factors the forward reads: f32 (exact, default) or f16 (half the bytes per token)")
      ->check(CLI::IsMember({"f32", "f16"}));
  l->add_option("--glider-alpha", o.glider_alpha,
                "glider: weight of the global prior against the token scores (0: arrow alone; default 1)");
  l->add_option("--glider-temperature", o.glider_temperature,
                "glider, global: temperature of the prior softmax over description similarities (default 0.1)");
}

RouteParams routing_from_options(const Model& model, int experts_used, float top_p, int min_experts, int max_experts) {
  const bool any = experts_used != 0 || top_p != 0.0f || min_experts != 1 || max_experts != 0;
  if (!any) return model.routing;
  if (model.hp.n_expert == 0)
    fail("--experts-used, --expert-top-p, --min-experts and --max-experts apply to token-routed MoE models; ",
         model.path, " is dense");
  RouteParams p = model.routing;
  const int n = model.hp.n_expert;
  if (experts_used != 0) {
    if (experts_used < 1 || experts_used > n) fail("--experts-used ", experts_used, ": the model has ", n, " experts (1..", n, ")");
    p.top_k = experts_used;
  }
  if (top_p != 0.0f || min_experts != 1 || max_experts != 0) {
    if (!(top_p > 0.0f && top_p <= 1.0f)) fail("--expert-top-p ", top_p, " is outside (0, 1] (needed with --min/--max-experts)");
    if (max_experts < 0 || max_experts > n) fail("--max-experts ", max_experts, ": the model has ", n, " experts");
    if (min_experts < 1 || min_experts > (max_experts ? max_experts : n))
      fail("--min-experts ", min_experts, " must be in 1..", max_experts ? max_experts : n);
    p.top_p = top_p;
    p.min_experts = min_experts;
    p.max_experts = max_experts;
  }
  if (std::string why = p.check(); !why.empty()) fail(why);
  return p;
}

std::string resolve_model_path(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::exists(path, ec)) return path;
  const RegistryModel* m = find_registry_model(path);
  if (!m) return path;  // the loader names the missing file
  const std::string cached = cached_model_path(*m);
  if (!std::filesystem::exists(cached, ec)) fail(path, ": not downloaded yet; run `moeforge pull ", path, "`");
  return cached;
}

std::unique_ptr<Model> load(const ModelOptions& o) {
  LoadOptions lo;
  lo.tokenizer_path = o.tokenizer;
  if (o.expert_top_p != 0.0f && !(o.expert_top_p > 0.0f && o.expert_top_p <= 1.0f))
    fail("--expert-top-p ", o.expert_top_p, " is outside (0, 1]");  // before a long load
  auto m = load_model(resolve_model_path(o.model), lo);
  m->routing = routing_from_options(*m, o.experts_used, o.expert_top_p, o.min_experts, o.max_experts);
  if (!o.mode_expert.empty()) {
    if (!m->mode.enabled()) fail("--mode-expert needs a MoDE model; ", o.model, " has no experts beside its layers");
    m->mode_expert = m->mode.choice(o.mode_expert);
  }
  if (!o.lora.empty()) {
    if (m->mode.enabled()) fail("--lora: LoRA adapters on a MoDE model are not supported (adapt its backbone instead)");
    auto lib = std::make_shared<LoraLibrary>(load_lora_library(o.lora, *m, o.lora_type == "f16"));
    const std::string route = !o.lora_route.empty() ? o.lora_route : lib->adapters.size() == 1 ? lib->adapters[0].name : "arrow";
    auto lora = std::make_shared<RoutedLora>(lib, make_lora_router(*lib, route, o.lora_top_k));
    if (lora->router().needs_prior()) {
      ThreadPool pool(o.threads);
      lora->set_global_index(std::make_shared<GlobalIndex>(build_global_index(*m, pool, *lib, o.glider_temperature, o.glider_alpha)));
    }
    m->adapter = lora;
  } else if (!o.lora_route.empty()) {
    fail("--lora-route needs adapters (--lora)");
  }
  return m;
}

void refuse_mode_model(const Model& model, const std::string& what) {
  if (model.mode.enabled())
    fail(model.path, ": ", what, " of a MoDE model is not supported (its experts run beside the backbone's layers); "
         "use its backbone");
}

void lora_query(const Model& model, ThreadPool& pool, std::span<const int32_t> prompt) {
  if (auto* lora = dynamic_cast<RoutedLora*>(model.adapter.get())) set_query(*lora, model, pool, prompt);
}

nlohmann::json lora_json(const Model& model) {
  const auto* lora = dynamic_cast<const RoutedLora*>(model.adapter.get());
  return lora ? lora_report(*lora) : nlohmann::json(nullptr);
}

namespace {
constexpr DType kUniformTypes[] = {DType::F32, DType::BF16, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1};

bool is_preset(const std::string& type) {
  for (const std::string& p : preset_names())
    if (p == type) return true;
  return false;
}
}  // namespace

void check_export_type(const std::string& type) {
  if (is_preset(type)) return;
  for (DType t : kUniformTypes)
    if (dtype_name(t) == type) return;
  fail("--type ", type, ": expected one of q4_K_M, q5_K_M, q6_K, q8_0, f16, f32, bf16, q4_0, q4_1, q5_0, q5_1");
}

void export_gguf_typed(const Model& m, const std::string& out, const std::string& type) {
  check_export_type(type);
  if (is_preset(type)) return export_gguf(m, out, preset_types(type, m), preset_file_type(type));
  for (DType t : kUniformTypes)
    if (dtype_name(t) == type) return export_gguf(m, out, t);
}

void write_text_atomic(const std::string& path, const std::string& text) {
  AtomicFile f(path);
  f.write(text.data(), text.size());
  f.commit();
}

std::string expert_checkpoint_key(const CLI::App& cmd, const std::string& stats_path, const Model& model,
                                  const std::vector<std::string>& ignored) {
  std::istringstream options(cmd.config_to_str(false, false));  // one "name=value" line per option given
  std::string key = "program " + sha256_file("/proc/self/exe") + "\n", line;
  while (std::getline(options, line)) {
    const std::string name = line.substr(0, line.find('='));
    if (name != "threads" && name != "json" && std::find(ignored.begin(), ignored.end(), name) == ignored.end()) key += line + "\n";
  }
  return key + "stats " + sha256_file(stats_path) + "\nmodel " + fingerprint_hex(model_fingerprint(model));
}

}  // namespace mf::cli
