// moeforge logits: raw next-token logits for given token ids (for checking the engine
// against other implementations, e.g. the trainer's own forward).
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "model/session.h"
#include "tools/commands.h"
#include "tools/common.h"

namespace mf::cli {

namespace {

struct LogitsOptions {
  ModelOptions model;
  std::string tokens;
  bool f32 = false;
};

void run_logits(const LogitsOptions& o) {
  std::vector<int32_t> ids;
  std::stringstream ss(o.tokens);
  for (std::string item; std::getline(ss, item, ',');) {
    try {
      ids.push_back(std::stoi(item));
    } catch (const std::exception&) {
      fail("--tokens: '", item, "' is not an integer");
    }
  }
  if (ids.empty()) fail("--tokens: no token ids given");
  auto model = load(o.model);
  ThreadPool pool(o.model.threads);
  Session session(*model, int(ids.size()), pool);
  if (o.f32) session.set_numerics(Numerics{false, false});
  const float* logits = session.eval(ids, true);  // [n, V]
  const int64_t V = model->hp.n_vocab;
  nlohmann::json rows = nlohmann::json::array();
  for (size_t t = 0; t < ids.size(); ++t) rows.push_back(std::vector<float>(logits + t * V, logits + (t + 1) * V));
  std::printf("%s\n", dump_json(nlohmann::json{{"n_vocab", V}, {"tokens", ids}, {"logits", rows}}).c_str());
}

}  // namespace

void add_logits(CLI::App& app) {
  auto o = std::make_shared<LogitsOptions>();
  CLI::App* cmd = app.add_subcommand("logits", "Print the logits at every position for comma-separated token ids (JSON)");
  add_model_options(cmd, o->model);
  cmd->add_option("--tokens", o->tokens, "Token ids, e.g. 1,15,300")->required();
  cmd->add_flag("--f32", o->f32,
                "Compute in f32 throughout, as transformers and PyTorch do (default: llama.cpp's f16 attention inputs\n"
                "and quantised activations for quantised weights)");
  cmd->callback([o] { run_logits(*o); });
}

}  // namespace mf::cli
