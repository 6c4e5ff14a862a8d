// moeforge route: the router's decision for a prompt.
#include <cstdio>

#include "core/error.h"
#include "tools/commands.h"
#include "tools/moe_cli.h"

namespace mf::cli {

namespace {

struct RouteOptions {
  std::string moe, prompt, file;
  int threads = 0;
  bool json = false;
};

void run_route(const RouteOptions& o) {
  if (o.prompt.empty() == o.file.empty()) fail("give exactly one of --prompt and --file");
  if (!MoeModel::is_moe_file(o.moe)) fail(o.moe, ": not a .moe file (build one with moeforge build-moe)");
  LoadedModel lm;
  lm.moe = MoeModel::load(o.moe);
  std::string text = o.file.empty() ? o.prompt : read_text_file(o.file);
  std::vector<int32_t> tokens = lm.model().require_tokenizer().encode(text, /*add_special=*/false);
  if (tokens.empty()) fail("the prompt has no tokens");
  ThreadPool pool(o.threads);
  Routing r = lm.moe->route(tokens, pool);
  nlohmann::json j = routing_json(lm, r);
  j["subdomain"] = r.decision.subdomain;
  if (o.json) {
    std::printf("%s\n", dump_json(j).c_str());
  } else {
    std::printf("domain %s  subdomain %d  confidence %.4f  expert %s\n", r.domain.c_str(), r.decision.subdomain,
                r.decision.confidence, r.expert_name.c_str());
  }
}

}  // namespace

void add_route(CLI::App& app) {
  auto o = std::make_shared<RouteOptions>();
  CLI::App* cmd = app.add_subcommand("route", "Show the multi-level router's decision (domain, sub-domain, confidence)");
  cmd->add_option("--moe", o->moe, ".moe file")->required();
  cmd->add_option("-p,--prompt", o->prompt, "Prompt text");
  cmd->add_option("-f,--file", o->file, "Read the prompt from a UTF-8 file");
  cmd->add_option("-t,--threads", o->threads, "Worker threads (default: all cores)");
  cmd->add_flag("--json", o->json, "Print {\"domain\", \"subdomain\", \"confidence\", ...} as JSON");
  cmd->callback([o] { run_route(*o); });
}

}  // namespace mf::cli
