// Options and helpers shared by the CLI subcommands.
#pragma once
#include <memory>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "core/text_file.h"
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
};

// Adds --model/-m, --tokenizer, --threads/-t and the expert-routing options to a subcommand.
void add_model_options(CLI::App* cmd, ModelOptions& o);
// Loads the model and applies the routing options to model->routing (mf::Error naming the
// flag if they do not fit it).
std::unique_ptr<Model> load(const ModelOptions& o);
// The routing of `model` with these options applied (mf::Error naming the flag if they do not fit).
RouteParams routing_from_options(const Model& model, int experts_used, float top_p, int min_experts, int max_experts);
// A path as given if it exists; else a registry model's name (moeforge pull) becomes its cached
// file (mf::Error if it is not downloaded yet).
std::string resolve_model_path(const std::string& path);

// JSON text for --json output; invalid UTF-8 (e.g. a partial multi-byte token) becomes U+FFFD.
// Writes text to path atomically (a temporary renamed into place): no half-written file.
void write_text_atomic(const std::string& path, const std::string& text);

template <typename Json>
std::string dump_json(const Json& j, int indent = -1) {
  return j.dump(indent, ' ', false, Json::error_handler_t::replace);
}


}  // namespace mf::cli
