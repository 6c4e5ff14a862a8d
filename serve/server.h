// moeforge's OpenAI-compatible HTTP server: endpoints, authentication, errors, metrics and
// graceful shutdown around a continuous-batching Scheduler.
//
//   POST /v1/completions, POST /v1/chat/completions   (stream: true -> Server-Sent Events)
//   GET  /v1/models, /v1/models/{id}, /health (never needs the API key), /metrics (Prometheus)
#pragma once
#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "model/model.h"
#include "serve/chat_template.h"
#include "serve/metrics.h"
#include "serve/prepare.h"
#include "serve/route.h"
#include "serve/scheduler.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace mf::serve {

class ConnectionPool;

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                // 0: any free port (bind() returns it)
  std::string model_id;           // the model's name in /v1/models and requests
  std::string api_key;            // "": no authentication
  SchedulerOptions scheduler;     // --parallel, --ctx, --queue
  size_t max_body_bytes = 1 << 20;
  int http_threads = 0;           // 0: parallel + queue + 16 (every waiting request holds one)
  int timeout_s = 30;             // socket read/write timeout (slow clients)
  std::string chat_template;      // "": detect from the model's template; else a format name
  int drain_timeout_s = 30;       // after SIGTERM, cancel what still runs after this long
  bool log_requests = true;       // one access-log line per request on stderr
};

class Server {
 public:
  Server(const Model& model, ThreadPool& pool, ServerOptions opts, Router router = {}, AdapterLibrary adapters = {});
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds the listening socket; returns the port. Throws mf::Error when it cannot bind.
  int bind();
  // Serves until shutdown() has drained the in-flight requests. Call after bind().
  void run();
  // Graceful shutdown, callable from any thread: new connections are refused and new
  // generation requests get 503; in-flight generations finish (or are cancelled after
  // drain_timeout_s); then run() returns.
  void shutdown();

  ChatFormat chat_format() const { return ctx_.chat_format; }
  const ServerOptions& options() const { return opts_; }
  Metrics& metrics() { return metrics_; }
  Scheduler& scheduler() { return *scheduler_; }

 private:
  void routes();
  void handle_generation(const httplib::Request& req, const std::string& body, httplib::Response& res, Endpoint endpoint);
  void respond_stream(const httplib::Request& req, httplib::Response& res, PreparedRequest p, std::shared_ptr<Generation> gen);
  void respond_whole(const httplib::Request& req, httplib::Response& res, const PreparedRequest& p,
                     const std::shared_ptr<Generation>& gen);
  bool authorized(const httplib::Request& req) const;
  Gauges gauges() const;
  void log(const httplib::Request& req, const httplib::Response& res, double seconds) const;

  const Model& model_;
  ServerOptions opts_;
  Router router_;
  AdapterLibrary adapters_;
  std::mutex route_mu_;
  ServingContext ctx_;
  Metrics metrics_;
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<httplib::Server> http_;
  size_t http_threads_ = 0;  // main connection threads (ConnectionPool)
  std::atomic<ConnectionPool*> connections_{nullptr};  // made and owned by httplib while it listens
  std::atomic<bool> draining_{false};
  std::atomic<bool> running_{false};
  std::thread drain_thread_;
  std::mutex drain_mu_;
};

}  // namespace mf::serve
