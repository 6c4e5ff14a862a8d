// moeforge: one CLI for running, converting and (later) carving and serving models.
#include <cstdio>

#include "core/error.h"
#include "tools/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"moeforge: run dense LLM checkpoints fast on CPU and carve domain-routed MoEs from them"};
  app.require_subcommand(1);
  mf::cli::add_generate(app);
  mf::cli::add_perplexity(app);
  mf::cli::add_bench(app);
  mf::cli::add_inspect(app);
  mf::cli::add_convert(app);
  mf::cli::add_train_tokenizer(app);
  mf::cli::add_train(app);
  mf::cli::add_logits(app);
  mf::cli::add_serve(app);
  mf::cli::add_calibrate(app);
  mf::cli::add_build_moe(app);
  mf::cli::add_route(app);
  mf::cli::add_eval_moe(app);
  mf::cli::add_pull(app);
  mf::cli::add_tokenize(app);
  mf::cli::add_eval(app);
  mf::cli::add_lora(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  } catch (const mf::Error& e) {
    std::fprintf(stderr, "moeforge: error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "moeforge: error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {  // a library's own exception: still one line, never abort
    std::fprintf(stderr, "moeforge: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
