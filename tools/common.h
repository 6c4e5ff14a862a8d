// Options and helpers shared by the CLI subcommands.
#pragma once
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "model/model.h"

namespace mf::cli {

struct ModelOptions {
  std::string model;
  std::string tokenizer;
  int threads = 0;  // 0: all cores
};

// Adds --model/-m, --tokenizer and --threads/-t to a subcommand.
void add_model_options(CLI::App* cmd, ModelOptions& o);
std::unique_ptr<Model> load(const ModelOptions& o);

// Reads a whole text file; fails with a clear error if missing, empty or not UTF-8.
std::string read_text_file(const std::string& path);

}  // namespace mf::cli
