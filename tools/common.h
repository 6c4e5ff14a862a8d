// Options and helpers shared by the CLI subcommands.
#pragma once
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "core/text_file.h"
#include "core/thread_pool.h"
#include "model/model.h"

namespace mf::cli {

struct ModelOptions {
  std::string model;
  std::string tokenizer;
  int threads = 0;  // 0: all cores
  // Expert routing of a token-routed MoE (0: the checkpoint's top-k; top-p off).
  int experts_used = 0;
  float expert_top_p = 0.0f;
  int min_experts = 1, max_experts = 0;
  std::string mode_expert;  // MoDE: "" or auto (gated), backbone, or an expert's name
  // LoRA adapters (PEFT directories or GGUF files, [NAME=]PATH) and how they are routed.
  std::vector<std::string> lora;
  std::string lora_route;  // "" -> the single adapter, or arrow for a library
  int lora_top_k = 2;
  std::string lora_type = "f32";  // what the forward reads: f32 or f16
  float glider_alpha = 1.0f, glider_temperature = 0.1f;  // GLIDER's global router
};

// Adds --model/-m, --tokenizer, --threads/-t, the expert-routing and the LoRA options to a subcommand.
void add_model_options(CLI::App* cmd, ModelOptions& o);
// Loads the model, applies the routing options to model->routing and attaches the LoRA
// library to model->adapter (mf::Error naming the flag or file if they do not fit it).
std::unique_ptr<Model> load(const ModelOptions& o);
// The routing of `model` with these options applied (mf::Error naming the flag if they do not fit).
RouteParams routing_from_options(const Model& model, int experts_used, float top_p, int min_experts, int max_experts);
// mf::Error "WHAT of a MoDE model is not supported" when the model has MoDE experts (their
// layers run beside the backbone's, not in sequence, so per-layer carving does not apply).
void refuse_mode_model(const Model& model, const std::string& what);
// A path as given if it exists; else a registry model's name (moeforge pull) becomes its cached
// file (mf::Error if it is not downloaded yet).
std::string resolve_model_path(const std::string& path);

// GGUF export with a --type: llama.cpp's presets (q4_K_M, q5_K_M, q6_K, q8_0, f16) or one type
// for every matrix (f32, bf16, q4_0, q4_1, q5_0, q5_1). check_export_type fails on others.
void check_export_type(const std::string& type);
void export_gguf_typed(const Model& model, const std::string& out, const std::string& type);
inline constexpr const char* kExportTypeHelp =
    "Weight types: llama-quantize's mixes q4_K_M, q5_K_M, q6_K, q8_0, f16 (the same tensor types as\n"
    "llama.cpp chooses, e.g. q6_K output and some attn_v/ffn_down in q4_K_M; rows that are not a\n"
    "multiple of 256 fall back to q5_0/q5_1/q8_0), or one type for every matrix: f32, bf16, q4_0,\n"
    "q4_1, q5_0, q5_1 (default f16)";

// Sets the prior of a sequence starting with `prompt` when the model's LoRA routing takes one
// (glider, global); else nothing.
void lora_query(const Model& model, ThreadPool& pool, std::span<const int32_t> prompt);

// The model's LoRA library, its router and how it has been used so far; null without --lora.
nlohmann::json lora_json(const Model& model);

// JSON text for --json output; invalid UTF-8 (e.g. a partial multi-byte token) becomes U+FFFD.
// Writes text to path atomically (a temporary renamed into place): no half-written file.
void write_text_atomic(const std::string& path, const std::string& text);

// The key that expert checkpoints (moe/expert_checkpoint.h) of a build are saved under: this
// program's bytes, the subcommand's options as parsed (but --threads and --json, on which builds
// do not depend, and the `ignored` ones, which the caller adds to each build's key itself), the
// calibration file's bytes and the model's fingerprint. Change any and the experts are built again.
std::string expert_checkpoint_key(const CLI::App& cmd, const std::string& stats_path, const Model& model,
                                  const std::vector<std::string>& ignored = {});

template <typename Json>
std::string dump_json(const Json& j, int indent = -1) {
  return j.dump(indent, ' ', false, Json::error_handler_t::replace);
}


}  // namespace mf::cli
