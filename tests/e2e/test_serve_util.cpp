#include "test_serve_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <regex>
#include <thread>

#include "test_util.h"

namespace mf::test {

ServeProcess::ServeProcess(const std::string& args, const std::string& model) {
  signal(SIGPIPE, SIG_IGN);
  const char* bin = std::getenv("MOEFORGE_BIN");
  const std::string exe = bin ? bin : "build/bin/moeforge";
  dir_ = temp_dir();
  const std::string cmd = "exec " + exe + " serve -m " + model + " --port 0 -t 1 " + args + " >" + dir_ + "/out 2>" + dir_ + "/err";
  pid_ = fork();
  if (pid_ == 0) {
    execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  const std::regex listening(R"(listening on http://[0-9.]+:([0-9]+))");
  for (int i = 0; i < 400 && running(); ++i) {  // up to 20 s (a loaded machine)
    std::smatch m;
    const std::string err = log();
    if (std::regex_search(err, m, listening)) {
      port_ = std::stoi(m[1]);
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

ServeProcess::~ServeProcess() {
  if (running()) {
    kill(pid_, SIGKILL);
    wait(10);
  }
  std::filesystem::remove_all(dir_);
}

bool ServeProcess::running() {
  if (exit_code_ >= 0 || pid_ <= 0) return false;
  int status = 0;
  const pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r == 0) return true;
  exit_code_ = r == pid_ ? (WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status)) : 255;
  return false;
}

int ServeProcess::wait(int timeout_s) {
  for (int i = 0; i < timeout_s * 20 && running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  return running() ? -1 : exit_code_;
}

int ServeProcess::terminate(int timeout_s) {
  if (running()) kill(pid_, SIGTERM);
  return wait(timeout_s);
}

std::string ServeProcess::log() const {
  try {
    return read_file(dir_ + "/err");
  } catch (...) {
    return "";
  }
}

httplib::Client ServeProcess::client(int read_timeout_s) const {
  httplib::Client c("127.0.0.1", port_);
  c.set_read_timeout(read_timeout_s, 0);
  c.set_connection_timeout(5, 0);
  return c;
}

std::string ServeProcess::metrics_when(const std::function<bool(const std::string&)>& ready, int timeout_ms) const {
  std::string text;
  for (int waited = 0;; waited += 20) {
    auto c = client();
    auto r = c.Get("/metrics");
    text = r ? r->body : "";
    if (ready(text) || waited >= timeout_ms) return text;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

int stream_post(int port, const std::string& path, const std::string& body,
                const std::function<bool(const std::string&)>& on_data, const httplib::Headers& headers) {
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(60, 0);
  httplib::Request req;
  req.method = "POST";
  req.path = path;
  req.headers = headers;
  req.set_header("Content-Type", "application/json");
  req.body = body;
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) { return on_data(std::string(data, n)); };
  httplib::Response res;
  httplib::Error err = httplib::Error::Success;
  c.send(req, res, err);
  return res.status > 0 ? res.status : 0;
}

std::vector<std::string> sse_data(const std::string& body) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < body.size()) {
    size_t end = body.find("\n\n", pos);
    if (end == std::string::npos) end = body.size();
    std::string event = body.substr(pos, end - pos);
    if (event.rfind("data: ", 0) == 0) out.push_back(event.substr(6));
    pos = end + 2;
  }
  return out;
}

double metric(const std::string& text, const std::string& name) {
  const std::string key = "\n" + name + " ";
  const size_t pos = ("\n" + text).find(key);
  if (pos == std::string::npos) return -1;
  return std::atof(text.c_str() + pos + key.size() - 1);
}

RawConnection::RawConnection(int port) {
  fd_ = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(uint16_t(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd_ >= 0 && connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) close();
}

RawConnection::~RawConnection() { close(); }

bool RawConnection::send(const std::string& bytes) {
  if (fd_ < 0) return false;
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::send(fd_, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
    if (n <= 0) return false;
    done += size_t(n);
  }
  return true;
}

std::string RawConnection::read_until(const std::string& needle, int timeout_ms) {
  std::string got;
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (fd_ >= 0 && got.find(needle) == std::string::npos) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now()).count();
    if (left <= 0) break;
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, int(left)) <= 0) break;
    char buf[4096];
    const ssize_t n = recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) break;
    got.append(buf, size_t(n));
  }
  return got;
}

void RawConnection::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

}  // namespace mf::test
