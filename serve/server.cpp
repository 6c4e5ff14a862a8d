#include "serve/server.h"

#include <httplib.h>

#include <sys/socket.h>

#include <csignal>
#include <cstdio>

#include "core/error.h"
#include "serve/api_error.h"
#include "serve/connection_pool.h"
#include "serve/connection_probe.h"
#include "serve/openai_json.h"

namespace mf::serve {

using json = nlohmann::json;

namespace {

constexpr auto kPoll = std::chrono::milliseconds(50);  // how often waiting handlers check the client
constexpr size_t kOverflowThreads = 4;  // connections past --http-threads: answered 429 there

// Set by the pre-routing handler, read by the logger: both run on the connection's thread.
thread_local Clock::time_point t_request_start;
thread_local bool t_request_started = false;

// cpp-httplib 0.11 listens with a backlog of 5 (compiled into Debian's library): bursts of
// new connections overflow it and clients wait for SYN retransmits (1 s, 3 s). Listening
// again on the bound socket raises the backlog.
class HttpServer : public httplib::Server {
 public:
  void raise_backlog(int backlog) {
    const socket_t sock = svr_sock_;
    if (sock != INVALID_SOCKET) ::listen(sock, backlog);
  }
};

void send_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status;
  res.set_content(dump(e.to_json()), "application/json");
}

// Metrics label for a path: the known endpoints, everything else "other" (bounded cardinality).
std::string endpoint_label(const std::string& path) {
  for (const char* p : {"/v1/completions", "/v1/chat/completions", "/v1/models", "/health", "/metrics"})
    if (path == p) return p;
  if (path.rfind("/v1/models/", 0) == 0) return "/v1/models";
  return "other";
}

bool equal_constant_time(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i % (b.empty() ? 1 : b.size())]);
  return diff == 0 && !b.empty();
}

// The finish reasons a client sees; "cancelled" only happens when the server drains too long.
ApiError generation_failure(const GenerationUpdate& u) {
  if (u.finish_reason == "cancelled")
    return ApiError(503, "the generation was cancelled because the server is shutting down", "", "server_shutting_down");
  return ApiError(500, "generation failed: " + u.error);
}

}  // namespace

Server::Server(const Model& model, ThreadPool& pool, ServerOptions opts, Router router, AdapterLibrary adapters)
    : model_(model), opts_(std::move(opts)), router_(std::move(router)), adapters_(std::move(adapters)) {
  model.require_tokenizer();
  ctx_.model = &model;
  ctx_.model_id = opts_.model_id.empty() ? "moeforge" : opts_.model_id;
  {
    std::string warning;
    ChatRenderer chat = make_chat_renderer(model.chat_template, chat_template_tokens(model.require_tokenizer()), opts_.chat_template, &warning);
    if (!warning.empty()) std::fprintf(stderr, "moeforge serve: warning: %s\n", warning.c_str());
    ctx_.chat_format = chat.format;
    ctx_.chat_jinja = std::move(chat.jinja);
    ctx_.chat_tokens = std::move(chat.tokens);
  }
  ctx_.router = &router_;
  ctx_.adapters = &adapters_;
  ctx_.route_mu = &route_mu_;
  scheduler_ = std::make_unique<Scheduler>(model, pool, opts_.scheduler, &metrics_);
  ctx_.n_ctx = scheduler_->n_ctx();

  http_ = std::make_unique<HttpServer>();
  const size_t threads = http_threads_ = opts_.http_threads > 0 ? size_t(opts_.http_threads)
                                                : size_t(opts_.scheduler.n_parallel + opts_.scheduler.max_queue + 16);
  http_->new_task_queue = [this, threads] {
    auto* pool = new ConnectionPool(threads, kOverflowThreads);
    connections_ = pool;
    return pool;
  };
  http_->set_payload_max_length(opts_.max_body_bytes);
  http_->set_read_timeout(opts_.timeout_s, 0);
  http_->set_write_timeout(opts_.timeout_s, 0);
  http_->set_keep_alive_timeout(5);
  http_->set_keep_alive_max_count(100000);  // httplib's default (5) reconnects load generators constantly
  // Headers and body go out in separate writes: without TCP_NODELAY, Nagle's algorithm and the
  // client's delayed ACK add ~40 ms to every response.
  http_->set_tcp_nodelay(true);
  routes();
}

Server::~Server() {
  if (drain_thread_.joinable()) drain_thread_.join();
}

bool Server::authorized(const httplib::Request& req) const {
  if (opts_.api_key.empty() || req.path == "/health") return true;
  return equal_constant_time(req.get_header_value("Authorization"), "Bearer " + opts_.api_key);
}

Gauges Server::gauges() const {
  Gauges g;
  g.queue_depth = int64_t(scheduler_->queue_depth());
  g.active_sequences = scheduler_->active();
  g.slots = scheduler_->n_parallel();
  g.draining = draining_ ? 1 : 0;
  if (ConnectionPool* pool = connections_) g.http_connections = int64_t(pool->main_load());  // read only by handlers, while it lives
  g.http_threads = int64_t(http_threads_);
  return g;
}

void Server::log(const httplib::Request& req, const httplib::Response& res, double seconds) const {
  std::fprintf(stderr, "%s \"%s %s\" %d %.3fs\n", req.remote_addr.c_str(), req.method.c_str(), req.path.c_str(), res.status,
               seconds);
}

void Server::routes() {
  httplib::Server& h = *http_;
  h.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    t_request_start = Clock::now();
    t_request_started = true;
    if (authorized(req)) return httplib::Server::HandlerResponse::Unhandled;
    send_error(res, ApiError(401, "Incorrect or missing API key: send 'Authorization: Bearer KEY'", "", "invalid_api_key"));
    res.set_header("WWW-Authenticate", "Bearer");
    return httplib::Server::HandlerResponse::Handled;
  });
  h.set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;  // already an API error
    std::string message;
    if (res.status == 404) message = "no endpoint " + req.method + " " + req.path;
    else if (res.status == 413) message = "the request body is larger than the server's limit (--max-body)";
    else if (res.status == 400) message = "malformed HTTP request";
    else message = "HTTP error " + std::to_string(res.status);
    send_error(res, ApiError(res.status, message));
    return httplib::Server::HandlerResponse::Handled;
  }));
  h.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "unknown exception";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    send_error(res, ApiError(500, "internal error: " + what));
  });
  h.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    const double seconds = t_request_started ? std::chrono::duration<double>(Clock::now() - t_request_start).count() : 0.0;
    t_request_started = false;
    metrics_.request(endpoint_label(req.path), res.status, seconds);
    if (opts_.log_requests) log(req, res, seconds);
  });

  // The generation endpoints read their bodies themselves: httplib's own reading answers 413
  // to any application/x-www-form-urlencoded body over 8 KiB (a limit compiled into Debian's
  // library), and that is the content type `curl -d` sends. --max-body still applies.
  auto generation = [this](Endpoint endpoint) {
    return [this, endpoint](const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& reader) {
      std::string body;
      bool ok = false;
      if (req.is_multipart_form_data()) {  // read and dropped: the body must be JSON
        ok = reader([](const httplib::MultipartFormData&) { return true; }, [](const char*, size_t) { return true; });
        if (ok) return send_error(res, ApiError(400, "the request body must be JSON, not multipart/form-data"));
      } else {
        ok = reader([&body](const char* data, size_t n) {
          body.append(data, n);
          return true;
        });
      }
      if (!ok) {  // httplib set 413 (over --max-body) or 400; the error handler writes the JSON
        if (res.status < 400) res.status = 400;
        return;
      }
      handle_generation(req, body, res, endpoint);
    };
  };
  h.Post("/v1/completions", generation(Endpoint::Completions));
  h.Post("/v1/chat/completions", generation(Endpoint::Chat));
  auto model_json = [this] {
    json ext = {{"n_ctx", ctx_.n_ctx},
                {"parallel", scheduler_->n_parallel()},
                {"chat_template", chat_format_name(ctx_.chat_format)},
                {"experts", router_ ? json(router_.experts) : json::array()},
                {"adapters", adapters_ ? json(adapters_.names) : json::array()}};
    return json{{"id", ctx_.model_id}, {"object", "model"}, {"created", 0}, {"owned_by", "moeforge"}, {"moeforge", ext}};
  };
  h.Get("/v1/models", [model_json](const httplib::Request&, httplib::Response& res) {
    res.set_content(dump(json{{"object", "list"}, {"data", json::array({model_json()})}}), "application/json");
  });
  h.Get(R"(/v1/models/(.+))", [this, model_json](const httplib::Request& req, httplib::Response& res) {
    if (req.matches[1] != ctx_.model_id)
      return send_error(res, ApiError(404, "The model '" + std::string(req.matches[1]) + "' does not exist", "model", "model_not_found"));
    res.set_content(dump(model_json()), "application/json");
  });
  h.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    Gauges g = gauges();
    json j = {{"status", draining_ ? "draining" : "ok"}, {"slots", g.slots}, {"active", g.active_sequences}, {"queued", g.queue_depth}};
    res.status = draining_ ? 503 : 200;
    res.set_content(dump(j), "application/json");
  });
  h.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics_.render(gauges()), "text/plain; version=0.0.4");
  });
}

void Server::handle_generation(const httplib::Request& req, const std::string& body, httplib::Response& res,
                               Endpoint endpoint) {
  try {
    if (draining_) throw ApiError(503, "the server is shutting down", "", "server_shutting_down");
    if (ConnectionPool::on_overflow_thread()) {  // every connection thread is taken: refuse at once
      metrics_.rejected_queue_full();
      res.set_header("Retry-After", "1");
      res.set_header("Connection", "close");  // retry on a new connection, which may get a main thread
      throw ApiError(429, "the server is busy (all " + std::to_string(http_threads_) + " connection threads in use); retry later",
                     "", "queue_full", "rate_limit_error");
    }
    ApiRequest r = parse_request(body, endpoint);
    PreparedRequest p = prepare_request(r, ctx_);
    std::shared_ptr<Generation> gen;
    try {
      gen = scheduler_->submit(p.job);
    } catch (const Error& e) {
      throw ApiError(400, e.what());
    }
    if (!gen) {
      metrics_.rejected_queue_full();
      res.set_header("Retry-After", "1");
      throw ApiError(429,
                     "the server is busy (" + std::to_string(scheduler_->n_parallel()) + " sequences running and " +
                         std::to_string(opts_.scheduler.max_queue) + " queued); retry later",
                     "", "queue_full", "rate_limit_error");
    }
    if (p.meta.route) {
      metrics_.routed(p.meta.route->domain, p.meta.route->expert(), p.meta.route->forced);
      res.set_header("X-Moeforge-Expert", p.meta.route->expert());
    }
    if (p.stream) respond_stream(req, res, std::move(p), std::move(gen));
    else respond_whole(req, res, p, gen);
  } catch (const ApiError& e) {
    send_error(res, e);
  }
}

void Server::respond_whole(const httplib::Request& req, httplib::Response& res, const PreparedRequest& p,
                           const std::shared_ptr<Generation>& gen) {
  ConnectionProbe probe(req.local_addr, req.local_port, req.remote_addr, req.remote_port);
  std::string text;
  GenerationUpdate u;
  for (;;) {
    u = gen->wait(kPoll, /*until_done=*/true);
    text += u.text;
    if (u.done) break;
    if (!probe.connected()) {
      gen->cancel();
      res.status = 499;  // client closed the request (nginx's code); nobody reads it
      return;
    }
  }
  if (u.finish_reason != "stop" && u.finish_reason != "length") throw generation_failure(u);
  res.set_content(dump(completion_body(p.meta, text, u.finish_reason, u.prompt_tokens, u.completion_tokens)), "application/json");
}

void Server::respond_stream(const httplib::Request& req, httplib::Response& res, PreparedRequest p,
                            std::shared_ptr<Generation> gen) {
  struct StreamState {
    PreparedRequest p;
    std::shared_ptr<Generation> gen;
    ConnectionProbe probe;
  };
  auto st = std::make_shared<StreamState>(
      StreamState{std::move(p), std::move(gen), ConnectionProbe(req.local_addr, req.local_port, req.remote_addr, req.remote_port)});
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  res.set_chunked_content_provider(
      "text/event-stream",
      [st](size_t, httplib::DataSink& sink) {
        const ResponseMeta& m = st->p.meta;
        bool first = true;
        // With stream_options.include_usage, OpenAI's chunks all carry "usage": null but the last.
        auto chunk = [&](const std::string& text, const std::string& finish_reason, bool first_chunk) {
          json j = stream_chunk(m, text, finish_reason, first_chunk);
          if (st->p.include_usage) j["usage"] = nullptr;
          return sse_event(j);
        };
        auto send = [&](const std::string& event) {
          if (sink.write(event.data(), event.size())) return true;
          st->gen->cancel();  // the client is gone
          return false;
        };
        // A chat stream opens with the assistant's role; a completion stream with its first text.
        if (m.endpoint == Endpoint::Chat) {
          if (!send(chunk("", "", true))) return false;
          first = false;
        }
        for (;;) {
          GenerationUpdate u = st->gen->wait(kPoll);
          if (!u.text.empty()) {
            if (!send(chunk(u.text, "", first))) return false;
            first = false;
          }
          if (u.done) {
            if (u.finish_reason == "stop" || u.finish_reason == "length") {
              if (!send(chunk("", u.finish_reason, first))) return false;
              if (st->p.include_usage && !send(sse_event(usage_chunk(m, u.prompt_tokens, u.completion_tokens)))) return false;
            } else {
              if (!send(sse_event(generation_failure(u).to_json()))) return false;
            }
            if (!send(kSseDone)) return false;
            sink.done();
            return true;
          }
          if (!st->probe.connected()) {
            st->gen->cancel();
            return false;
          }
        }
      },
      [st](bool success) {
        if (!success) st->gen->cancel();
      });
}

int Server::bind() {
  // Writing to a socket the client closed must fail with EPIPE, not kill the process.
  std::signal(SIGPIPE, SIG_IGN);
  int port = opts_.port;
  if (port == 0) {
    port = http_->bind_to_any_port(opts_.host);
    if (port < 0) fail("cannot bind to ", opts_.host, " on any port");
  } else if (!http_->bind_to_port(opts_.host, port)) {
    fail("cannot bind to ", opts_.host, ":", port, " (address in use or not available)");
  }
  static_cast<HttpServer&>(*http_).raise_backlog(1024);
  return port;
}

void Server::run() {
  running_ = true;
  if (!draining_) http_->listen_after_bind();
  running_ = false;
  std::lock_guard<std::mutex> lock(drain_mu_);
  if (drain_thread_.joinable()) drain_thread_.join();
}

void Server::shutdown() {
  std::lock_guard<std::mutex> lock(drain_mu_);
  if (draining_.exchange(true)) return;
  drain_thread_ = std::thread([this] {
    // Stop accepting connections (run() may not have started listening yet); requests already
    // being handled keep their threads and finish.
    for (int i = 0; i < 200 && running_ && !http_->is_running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    http_->stop();
    if (!scheduler_->wait_idle(std::chrono::seconds(opts_.drain_timeout_s))) {
      std::fprintf(stderr, "moeforge serve: drain timeout (%ds): cancelling the remaining generations\n", opts_.drain_timeout_s);
      scheduler_->cancel_all();
    }
  });
}

}  // namespace mf::serve
