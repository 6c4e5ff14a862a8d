// moeforge tokenize: token ids of a text with a model's tokenizer (for cross-checks and scripts).
#include <cstdio>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/text_file.h"
#include "tools/commands.h"
#include "tools/common.h"

namespace mf::cli {

namespace {

struct TokenizeOptions {
  ModelOptions model;
  std::string prompt, file;
  bool special = false, json = false, pieces = false;
};

void run_tokenize(const TokenizeOptions& o) {
  if (o.prompt.empty() == o.file.empty()) fail("tokenize: give exactly one of --prompt and --file");
  const std::string text = o.file.empty() ? o.prompt : read_text_file(o.file);
  auto model = load(o.model);
  const Tokenizer& tok = model->require_tokenizer();
  const std::vector<int32_t> ids = tok.encode(text, o.special);
  if (o.json) {
    nlohmann::json j = {{"n_tokens", ids.size()}, {"ids", ids}};
    if (o.pieces) {
      nlohmann::json p = nlohmann::json::array();
      for (int32_t id : ids) p.push_back(tok.decode({id}));
      j["pieces"] = p;
    }
    std::printf("%s\n", dump_json(j).c_str());
    return;
  }
  for (size_t i = 0; i < ids.size(); ++i) {
    if (o.pieces)
      std::printf("%d\t%s\n", ids[i], tok.decode({ids[i]}).c_str());
    else
      std::printf("%s%d", i ? " " : "", ids[i]);
  }
  if (!o.pieces) std::printf("\n");
}

}  // namespace

void add_tokenize(CLI::App& app) {
  auto o = std::make_shared<TokenizeOptions>();
  CLI::App* cmd = app.add_subcommand("tokenize", "Print the token ids of a text (space-separated, or JSON)");
  add_model_options(cmd, o->model);
  cmd->add_option("-p,--prompt", o->prompt, "Text to tokenize");
  cmd->add_option("-f,--file", o->file, "UTF-8 text file to tokenize");
  cmd->add_flag("--special", o->special, "Add BOS/EOS as the tokenizer's configuration says (as generate does)");
  cmd->add_flag("--pieces", o->pieces, "Show each token's text (one per line; with --json: a 'pieces' array)");
  cmd->add_flag("--json", o->json, "Print {\"n_tokens\", \"ids\"} as JSON");
  cmd->callback([o] { run_tokenize(*o); });
}

}  // namespace mf::cli
