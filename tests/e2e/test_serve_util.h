// Runs the real `moeforge serve` binary on a free loopback port for end-to-end tests, and
// small HTTP helpers around it (streaming reads, raw sockets, Server-Sent Events, metrics).
#pragma once
#include <httplib.h>
#include <sys/types.h>

#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace mf::test {

class ServeProcess {
 public:
  // Starts `moeforge serve -m MODEL --port 0 -t 1 ARGS` and waits until it listens.
  // One compute thread: the 2.2M-parameter model gains nothing from more, and a spinning
  // thread pool on a busy 2-core machine (parallel ctest) would slow every step down.
  explicit ServeProcess(const std::string& args = "", const std::string& model = "models/default");
  ~ServeProcess();  // kills the server if it is still running
  ServeProcess(const ServeProcess&) = delete;
  ServeProcess& operator=(const ServeProcess&) = delete;

  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  bool ok() const { return port_ > 0; }
  // Sends SIGTERM and waits up to timeout_s; returns the exit code (-1: still running).
  int terminate(int timeout_s = 30);
  // Waits for the process to end; returns its exit code, or -1 after timeout_s.
  int wait(int timeout_s);
  bool running();
  std::string log() const;  // stderr so far
  httplib::Client client(int read_timeout_s = 60) const;
  // /metrics once `ready(text)` holds (the access log and metrics are written just after a
  // response goes out), or the last text after timeout_ms.
  std::string metrics_when(const std::function<bool(const std::string&)>& ready, int timeout_ms = 5000) const;

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  int exit_code_ = -1;
  std::string dir_;
};

// POST that hands each received body fragment to on_data; on_data returning false closes
// the connection (a client that goes away). Returns the HTTP status (0 on transport failure).
int stream_post(int port, const std::string& path, const std::string& body,
                const std::function<bool(const std::string&)>& on_data, const httplib::Headers& headers = {});

// The "data: ..." payloads of a Server-Sent Events body, in order.
std::vector<std::string> sse_data(const std::string& body);

// Value of a metric line "NAME VALUE" (labels included in name); -1 when absent.
double metric(const std::string& metrics_text, const std::string& name);

// A raw TCP connection to the loopback port (for slow, truncated or abandoned requests).
class RawConnection {
 public:
  explicit RawConnection(int port);
  ~RawConnection();
  bool connected() const { return fd_ >= 0; }
  bool send(const std::string& bytes);
  // Reads until `needle` appears, the peer closes, or timeout; returns what was read.
  std::string read_until(const std::string& needle, int timeout_ms);
  void close();

 private:
  int fd_ = -1;
};

}  // namespace mf::test
