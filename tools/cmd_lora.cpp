// moeforge lora: adapters for a base model.
//   lora inspect ADAPTER -m BASE   ranks, alpha, scale and targets, checked against the base
//   lora convert ADAPTER -m BASE -o DIR|F.gguf   any adapter to PEFT or to a llama.cpp GGUF LoRA
//   lora init -m BASE -o DIR --rank R   a fresh adapter (PEFT's initialisation)
//   lora describe ADAPTER -m BASE --examples FILE | --text T   its task in words (GLIDER)
//   lora eval -m BASE --lora ... --task NAME=FILE ...   routes compared on text tasks
//   lora merge -m BASE --lora A [--lora B --lora-route A:0.5,B:0.5] -o OUT.gguf   merged dense model
#include <cstdio>
#include <filesystem>
#include <map>
#include <sstream>

#include "adapters/glider.h"
#include "adapters/lora_io.h"
#include "adapters/lora_library.h"
#include "core/error.h"
#include "core/text_file.h"
#include "model/gguf_export.h"
#include "model/quant_types.h"
#include "tools/commands.h"
#include "tools/common.h"

namespace mf::cli {
namespace {

struct LoraCmdOptions {
  ModelOptions model;
  std::string adapter, out, type = "keep", name;
  bool json = false;
  int64_t rank = 8;
  float alpha = 16.0f;
  std::vector<std::string> targets{"all"};
  bool random_b = false;
  uint64_t seed = 0;
  int n_examples = 3;
  std::string text, examples;  // lora describe
};

nlohmann::json describe(const LoraAdapter& a) {
  nlohmann::json targets = nlohmann::json::object();
  for (int t = 0; t < kNumLoraTargets; ++t) {
    int64_t layers = 0, rank = 0;
    float scale = 0;
    for (const auto& l : a.layers)
      if (l[size_t(t)].present()) {
        ++layers;
        rank = std::max(rank, l[size_t(t)].rank);
        scale = l[size_t(t)].scale;
      }
    if (layers) targets[lora_module_name(a.arch, t)] = {{"layers", layers}, {"rank", rank}, {"scale", scale}};
  }
  return {{"name", a.name},         {"source", a.source}, {"format", a.format}, {"arch", a.arch},
          {"base_model", a.base_model}, {"rank", a.rank}, {"alpha", a.alpha},   {"rslora", a.rslora},
          {"params", a.n_params()}, {"bytes", a.n_bytes()}, {"targets", targets}};
}

void run_inspect(const LoraCmdOptions& o) {
  auto m = load(o.model);
  const LoraAdapter a = load_lora(o.adapter, *m);
  const nlohmann::json j = describe(a);
  if (o.json) {
    std::printf("%s\n", dump_json(j).c_str());
    return;
  }
  std::printf("%s: %s LoRA for %s, rank %lld, alpha %g%s, %lld parameters (%.2f MiB f32), fits %s\n", a.name.c_str(),
              a.format.c_str(), a.arch.c_str(), (long long)a.rank, a.alpha, a.rslora ? " (rsLoRA)" : "",
              (long long)a.n_params(), double(a.n_bytes()) / (1 << 20), o.model.model.c_str());
  for (auto it = j["targets"].begin(); it != j["targets"].end(); ++it)
    std::printf("  %-10s %3lld layers, rank %lld, scale %g\n", it.key().c_str(), (long long)(*it)["layers"].get<int64_t>(),
                (long long)(*it)["rank"].get<int64_t>(), (*it)["scale"].get<float>());
}

void run_convert(const LoraCmdOptions& o) {
  auto m = load(o.model);
  const LoraAdapter a = load_lora(o.adapter, *m);
  const bool gguf = o.out.size() > 5 && o.out.compare(o.out.size() - 5, 5, ".gguf") == 0;
  if (gguf)
    write_gguf_lora(o.out, a, m->hp.head_dim);
  else
    write_peft_lora(o.out, a, m->hp.head_dim);
  std::fprintf(stderr, "wrote %s (%s, rank %lld, %lld parameters)\n", o.out.c_str(), gguf ? "llama.cpp GGUF LoRA" : "PEFT",
               (long long)a.rank, (long long)a.n_params());
}

void run_init(const LoraCmdOptions& o) {
  auto m = load(o.model);
  const std::string name = o.name.empty() ? std::filesystem::path(o.out).filename().string() : o.name;
  LoraAdapter a = init_lora(*m, name, o.rank, o.alpha, o.targets, o.random_b, o.seed);
  a.base_model = o.model.model;
  write_peft_lora(o.out, a, m->hp.head_dim);
  std::fprintf(stderr, "wrote %s (PEFT, rank %lld, %lld parameters, B %s)\n", o.out.c_str(), (long long)o.rank,
               (long long)a.n_params(), o.random_b ? "random" : "zero");
}

// One example per line; a JSON object line gives its "question", "text" or "prompt" field.
std::vector<std::string> read_examples(const std::string& path, size_t n) {
  std::vector<std::string> out;
  std::istringstream in(read_text_file(path));
  for (std::string line; out.size() < n && std::getline(in, line);) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_object()) {
      for (const char* key : {"question", "text", "prompt"})
        if (j.contains(key) && j[key].is_string()) {
          line = j[key].get<std::string>();
          break;
        }
    }
    out.push_back(line.substr(0, 600));
  }
  if (out.empty()) fail(path, ": no examples");
  return out;
}

void run_describe(const LoraCmdOptions& o) {
  if (o.text.empty() == o.examples.empty()) fail("lora describe: give --text or --examples (one of them)");
  auto m = load(o.model);
  const LoraAdapter a = load_lora(o.adapter, *m);
  std::string text = o.text;
  if (text.empty()) {
    ThreadPool pool(o.model.threads);
    text = describe_task(*m, pool, read_examples(o.examples, size_t(o.n_examples)));
    if (text.empty()) fail("the model wrote an empty description; give one with --text");
  }
  const bool dir = std::filesystem::is_directory(o.adapter);
  const std::string path = dir ? (std::filesystem::path(o.adapter) / "description.txt").string() : o.adapter + ".description.txt";
  write_text_atomic(path, text + "\n");
  std::printf("%s\n", text.c_str());
  std::fprintf(stderr, "wrote %s\n", path.c_str());
}

void run_merge(const LoraCmdOptions& o) {
  if (o.type != "keep") check_export_type(o.type);
  if (o.model.lora.empty()) fail("lora merge needs at least one --lora adapter");
  auto m = load(o.model);
  auto* lora = dynamic_cast<const RoutedLora*>(m->adapter.get());
  const auto* fixed = dynamic_cast<const FixedRouter*>(&lora->router());
  if (!fixed) fail("lora merge: --lora-route ", lora->router().name(), " routes per token and cannot be merged; give fixed weights (NAME:W,...) or uniform");
  const auto keep = m->adapter;  // the library stays alive while merging
  m->adapter.reset();
  // The base's own type of every weight, for --type keep (merged weights are f32 until written).
  std::map<std::pair<int, TensorRole>, DType> base_type;
  for (int il = 0; il < m->hp.n_layer; ++il) {
    const LayerWeights& l = m->w.layers[size_t(il)];
    const TensorView* ws[] = {&l.wq, &l.wk, &l.wv, &l.wo, &l.ffn_gate, &l.ffn_up, &l.ffn_down};
    for (int t = 0; t < kNumLoraTargets; ++t) base_type[{il, kLoraTargets[size_t(t)]}] = ws[t]->dtype;
  }
  const DType main_type = m->w.layers[0].wq.dtype;
  for (size_t i = 0; i < lora->library().adapters.size(); ++i)
    if (fixed->weights()[i] != 0.0f) merge_lora(*m, lora->library().adapters[i], fixed->weights()[i]);
  if (o.type == "keep") {
    const TypePolicy keep_policy = keep_types();
    export_gguf(*m, o.out, [&](const TensorToWrite& t) {
      auto it = base_type.find({t.layer, t.role});
      if (it == base_type.end()) return keep_policy(t);
      TensorView as_base = *t.view;
      as_base.dtype = it->second;  // only the type is read
      return keep_policy(TensorToWrite{t.name, t.role, t.layer, &as_base});
    }, gguf_file_type_of(main_type));
  } else {
    export_gguf_typed(*m, o.out, o.type);
  }
  std::fprintf(stderr, "wrote %s (%s, adapters merged by %s)\n", o.out.c_str(), o.type.c_str(), fixed->name().c_str());
}

}  // namespace

void add_lora(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand("lora", "LoRA adapters: inspect, convert to PEFT, initialise, merge into a model");
  cmd->require_subcommand(1);
  auto o = std::make_shared<LoraCmdOptions>();

  CLI::App* inspect = cmd->add_subcommand("inspect", "Ranks, alpha, scales and targets of an adapter, checked against a base");
  inspect->add_option("adapter", o->adapter, "PEFT directory or GGUF LoRA")->required();
  add_model_options(inspect, o->model);
  inspect->add_flag("--json", o->json, "Print the description as JSON");
  inspect->callback([o] { run_inspect(*o); });

  CLI::App* convert = cmd->add_subcommand("convert", "Write an adapter (PEFT or GGUF LoRA) as a PEFT directory or, to a .gguf, a llama.cpp GGUF LoRA");
  convert->add_option("adapter", o->adapter, "PEFT directory or GGUF LoRA")->required();
  add_model_options(convert, o->model);
  convert->add_option("-o,--output", o->out, "Output: a PEFT directory, or FILE.gguf for llama.cpp")->required();
  convert->callback([o] { run_convert(*o); });

  CLI::App* init = cmd->add_subcommand("init", "Write a fresh adapter for a base model (PEFT layout)");
  add_model_options(init, o->model);
  init->add_option("-o,--output", o->out, "Output PEFT directory")->required();
  init->add_option("--rank", o->rank, "Rank r (default 8)")->check(CLI::PositiveNumber);
  init->add_option("--alpha", o->alpha, "lora_alpha; the update is scaled by alpha / r (default 16)");
  init->add_option("--targets", o->targets, "Maps to adapt: q_proj k_proj v_proj o_proj gate_proj up_proj down_proj, or all")
      ->delimiter(',');
  init->add_flag("--random-b", o->random_b,
                 "Draw B at random instead of zero (PEFT's start is a no-op; a random B stands in for a trained "
                 "adapter in benchmarks and tests)");
  init->add_option("--seed", o->seed, "Random seed (default 0)");
  init->callback([o] { run_init(*o); });

  CLI::App* merge = cmd->add_subcommand("merge", "Merge adapters into the base weights and write a GGUF model");
  add_model_options(merge, o->model);
  merge->add_option("-o,--output", o->out, "Output .gguf path (written via a temporary file)")->required();
  merge->add_option("--type", o->type,
                    std::string("keep (default): every weight in the base's own type, merged ones re-quantised to it; or\n") +
                        kExportTypeHelp);
  merge->callback([o] { run_merge(*o); });

  CLI::App* describe = cmd->add_subcommand(
      "describe", "Write an adapter's task description (description.txt beside it) for GLIDER's global router");
  describe->add_option("adapter", o->adapter, "PEFT directory or GGUF LoRA")->required();
  add_model_options(describe, o->model);
  describe->add_option("--text", o->text, "The description, as given (else the base model writes it from --examples)");
  describe->add_option("--examples", o->examples, "Text file, one example per line (JSONL: its question/text/prompt field)");
  describe->add_option("--n", o->n_examples, "Examples shown to the model (default 3)")->check(CLI::PositiveNumber);
  describe->callback([o] { run_describe(*o); });

  add_lora_eval(cmd);
}

}  // namespace mf::cli
