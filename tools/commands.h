// Each CLI subcommand registers itself on the root app; see tools/main.cpp.
#pragma once
#include <CLI/CLI.hpp>

namespace mf::cli {

void add_generate(CLI::App& app);
void add_perplexity(CLI::App& app);
void add_bench(CLI::App& app);
void add_inspect(CLI::App& app);
void add_convert(CLI::App& app);
void add_train_tokenizer(CLI::App& app);
void add_train(CLI::App& app);
void add_logits(CLI::App& app);
void add_serve(CLI::App& app);
void add_calibrate(CLI::App& app);
void add_build_moe(CLI::App& app);
void add_route(CLI::App& app);
void add_eval_moe(CLI::App& app);
void add_pull(CLI::App& app);
void add_tokenize(CLI::App& app);
void add_eval(CLI::App& app);  // eval and eval-report
void add_lora(CLI::App& app);  // lora inspect, convert, init, describe, merge, eval
void add_lora_eval(CLI::App* lora);

}  // namespace mf::cli
