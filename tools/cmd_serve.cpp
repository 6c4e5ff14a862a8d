// moeforge serve: the OpenAI-compatible HTTP server (see docs/serving.md).
#include <pthread.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "core/error.h"
#include "moe/moe_model.h"
#include "serve/lora_seam.h"
#include "serve/server.h"
#include "tools/commands.h"
#include "tools/common.h"

namespace mf::cli {

namespace {

struct ServeOptions {
  ModelOptions model;
  serve::ServerOptions server;
  std::string alias;
  bool quiet = false;
};

// "models/default/" -> "default", "x/llama.q8_0.gguf" -> "llama.q8_0".
std::string model_name(const std::string& path) {
  std::filesystem::path p(path);
  if (p.filename().empty()) p = p.parent_path();
  std::string name = p.filename().string();
  for (const char* ext : {".gguf", ".bin", ".moe", ".safetensors"})
    if (name.size() > std::strlen(ext) && name.compare(name.size() - std::strlen(ext), std::string::npos, ext) == 0)
      return name.substr(0, name.size() - std::strlen(ext));
  return name.empty() ? "moeforge" : name;
}

// Fraction of the dense FFN neurons an expert keeps (its layers' widths over the model's).
double expert_density(const Model& model, const std::vector<LayerWeights>& layers, double fallback) {
  double kept = 0;
  for (const LayerWeights& l : layers) kept += double(l.ffn_gate.shape[0]);
  const double d = kept / (double(model.hp.n_ff) * double(layers.size()));
  return d < 1.0 ? d : fallback;  // full-width experts (weight purification): the build density
}

// The server's routing seam over a .moe file's multi-level router. Routing runs part of the
// model, so it gets its own thread pool (the scheduler owns the other one).
// The seam over a MoDE model: no prompt-level routing (its gates mix per token), but a request
// may force the backbone alone ("backbone" or "dense") or one expert beside it.
serve::Router mode_router(const Model& model) {
  serve::Router r;
  r.experts = {"auto", "backbone"};
  for (const std::string& e : model.mode.experts) r.experts.push_back(e);
  r.route = [&model](std::span<const int32_t>, const std::string& forced) {
    serve::RouteInfo info;
    const int choice = forced.empty() ? model.mode_expert : model.mode.choice(forced == "dense" ? "backbone" : forced);
    info.domain = info.expert_name = model.mode.choice_name(choice);
    info.mode_expert = choice;
    return info;
  };
  return r;
}

serve::Router moe_router(const MoeModel& moe, ThreadPool& route_pool) {
  serve::Router r;
  r.experts.push_back("dense");
  for (const std::string& d : moe.router().domains) r.experts.push_back(d);
  for (const Expert& e : moe.experts()) r.experts.push_back(e.name);
  r.route = [&moe, &route_pool](std::span<const int32_t> tokens, const std::string& forced) {
    Routing rt = forced.empty() ? moe.route(tokens, route_pool) : moe.force(forced, tokens, route_pool);
    serve::RouteInfo info;
    info.domain = rt.domain.empty() ? "dense" : rt.domain;
    const size_t slash = rt.expert_name.find('/');
    info.subdomain = rt.expert < 0 || slash == std::string::npos ? "" : rt.expert_name.substr(slash + 1);
    info.expert_name = rt.expert_name;
    info.confidence = rt.forced ? 1.0 : rt.decision.confidence;
    info.layers = moe.layers(rt);
    info.density = info.layers ? expert_density(moe.model(), *info.layers, moe.info().density) : 1.0;
    return info;
  };
  return r;
}

void run_serve(ServeOptions o) {
  // SIGTERM/SIGINT go to one thread that starts the graceful shutdown: block them before any
  // other thread exists so that every thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGUSR1);  // wakes the signal thread when the server stops by itself
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  if (o.server.api_key.empty())
    if (const char* key = std::getenv("MOEFORGE_API_KEY")) o.server.api_key = key;
  // A .moe file serves its dense model with the experts behind the router; anything else is dense.
  std::unique_ptr<MoeModel> moe;
  std::unique_ptr<Model> dense;
  if (MoeModel::is_moe_file(o.model.model)) {
    if (!o.model.tokenizer.empty()) fail("--tokenizer does not apply to a .moe file (it carries its tokenizer)");
    moe = MoeModel::load(o.model.model);
  } else {
    dense = load(o.model);
  }
  const Model& model = moe ? moe->model() : *dense;
  o.server.model_id = o.alias.empty() ? model_name(o.model.model) : o.alias;
  o.server.log_requests = !o.quiet;
  ThreadPool pool(o.model.threads);
  ThreadPool route_pool(1);
  serve::Router router = moe ? moe_router(*moe, route_pool) : model.mode.enabled() ? mode_router(model) : serve::Router{};
  const auto* lora = dynamic_cast<const RoutedLora*>(model.adapter.get());
  serve::Server server(model, pool, o.server, router, lora ? serve::lora_adapter_library(model, *lora, o.model.lora_top_k, o.model.glider_temperature, o.model.glider_alpha)
                                    : serve::AdapterLibrary{});
  const int port = server.bind();
  const auto& so = server.options();
  const double kv_mib = double(model.hp.n_layer) * 2.0 * server.scheduler().n_parallel() * double(server.scheduler().n_ctx()) *
                        double(model.hp.n_embd_kv()) * sizeof(float) / (1 << 20);
  std::fprintf(stderr,
               "moeforge serve: listening on http://%s:%d (model '%s'%s, %d slots x %lld tokens, KV cache %.0f MiB, chat template %s, %s)\n",
               so.host.c_str(), port, so.model_id.c_str(),
               moe ? (", " + std::to_string(moe->experts().size()) + " experts").c_str() : "", server.scheduler().n_parallel(),
               static_cast<long long>(server.scheduler().n_ctx()), kv_mib, serve::chat_format_name(server.chat_format()).c_str(),
               so.api_key.empty() ? "no API key" : "API key required");

  std::thread signal_thread([&] {
    for (bool draining = false;;) {
      int sig = 0;
      sigwait(&signals, &sig);
      if (sig == SIGUSR1) return;
      const char* name = sig == SIGTERM ? "SIGTERM" : "SIGINT";
      if (draining) {  // a second signal: stop now
        std::fprintf(stderr, "moeforge serve: second %s: exiting without draining\n", name);
        std::_Exit(1);
      }
      server.shutdown();  // returns at once; new requests get 503 from here on
      std::fprintf(stderr, "moeforge serve: %s: draining in-flight requests (again to force)\n", name);
      draining = true;
    }
  });
  server.run();
  pthread_kill(signal_thread.native_handle(), SIGUSR1);
  signal_thread.join();
  std::fprintf(stderr, "moeforge serve: stopped\n");
}

}  // namespace

void add_serve(CLI::App& app) {
  auto o = std::make_shared<ServeOptions>();
  serve::ServerOptions& s = o->server;
  CLI::App* cmd = app.add_subcommand(
      "serve",
      "Serve a model over an OpenAI-compatible HTTP API with continuous batching\n"
      "  POST /v1/completions, POST /v1/chat/completions (stream: true for Server-Sent Events),\n"
      "  GET /v1/models, /health (never needs the key), /metrics (Prometheus). See docs/serving.md.\n"
      "  A .moe model routes each prompt to an expert, reports it in the response's \"moeforge\" field\n"
      "  and accepts {\"moeforge\": {\"expert\": NAME|\"dense\"}} in requests. A MoDE model (docs/mode.md)\n"
      "  mixes its experts per token and accepts {\"moeforge\": {\"expert\": \"auto\"|\"backbone\"|NAME}}.\n"
      "  SIGTERM or SIGINT: stop accepting, finish in-flight requests, exit 0.");
  add_model_options(cmd, o->model);
  cmd->add_option("--host", s.host, "Address to listen on (default loopback; 0.0.0.0 exposes the server)")->capture_default_str();
  cmd->add_option("--port", s.port, "TCP port (0: any free port, printed at start)")->capture_default_str()->check(CLI::Range(0, 65535));
  cmd->add_option("-P,--parallel", s.scheduler.n_parallel, "Sequences decoded together in one batched step (slots)")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  cmd->add_option("-c,--ctx", s.scheduler.n_ctx, "Context per slot in tokens, prompt + completion (default: the model's)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--api-key", s.api_key,
                  "Require 'Authorization: Bearer KEY' on every endpoint but /health (default: $MOEFORGE_API_KEY, else none)");
  cmd->add_option("--queue", s.scheduler.max_queue, "Requests that may wait for a free slot; more get 429 with Retry-After")
      ->capture_default_str()
      ->check(CLI::Range(0, 100000));
  cmd->add_option("--max-body", s.max_body_bytes, "Largest request body in bytes; larger ones get 413")
      ->capture_default_str()
      ->check(CLI::Range(size_t(1024), size_t(1) << 30));
  cmd->add_option("--http-threads", s.http_threads, "Connection threads (default: parallel + queue + 16)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--timeout", s.timeout_s, "Seconds a slow client may stall reading or sending before it is dropped")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));
  cmd->add_option("--chat-template", s.chat_template,
                  "Chat format: jinja (the model's own template, rendered as transformers does), or a built-in\n"
                  "format: default, chatml, llama3, llama2, zephyr (default: the model's template when it has one\n"
                  "and it renders, else recognised from it)");
  cmd->add_option("--alias", o->alias, "Model name clients use (default: the model file or folder name)");
  cmd->add_option("--drain-timeout", s.drain_timeout_s, "Seconds to let in-flight requests finish after SIGTERM")
      ->capture_default_str()
      ->check(CLI::Range(0, 86400));
  cmd->add_flag("-q,--quiet", o->quiet, "No access log on stderr");
  cmd->add_option("--debug-step-delay-ms", s.scheduler.step_delay_ms,
                  "Testing: sleep this long after every batched step (slows generation down)")
      ->group("Testing")
      ->check(CLI::Range(0, 10000));
  cmd->callback([o] { run_serve(*o); });
}

}  // namespace mf::cli
