#include "serve/connection_probe.h"

#include <dirent.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace mf::serve {

namespace {

// Numeric host and port of a socket address.
bool endpoint(const sockaddr_storage& a, socklen_t len, std::string& host, int& port) {
  char h[NI_MAXHOST], s[NI_MAXSERV];
  if (getnameinfo(reinterpret_cast<const sockaddr*>(&a), len, h, sizeof h, s, sizeof s, NI_NUMERICHOST | NI_NUMERICSERV) != 0)
    return false;
  host = h;
  port = std::atoi(s);
  return true;
}

// "::ffff:127.0.0.1" and "127.0.0.1" name the same peer.
std::string plain(const std::string& host) { return host.rfind("::ffff:", 0) == 0 ? host.substr(7) : host; }

}  // namespace

ConnectionProbe::ConnectionProbe(const std::string& local_addr, int local_port, const std::string& remote_addr,
                                 int remote_port) {
  DIR* dir = opendir("/proc/self/fd");
  if (!dir) return;
  while (dirent* e = readdir(dir)) {
    char* end = nullptr;
    const long fd = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0' || fd == dirfd(dir)) continue;
    sockaddr_storage peer{}, self{};
    socklen_t peer_len = sizeof peer, self_len = sizeof self;
    if (getpeername(int(fd), reinterpret_cast<sockaddr*>(&peer), &peer_len) != 0) continue;
    if (getsockname(int(fd), reinterpret_cast<sockaddr*>(&self), &self_len) != 0) continue;
    std::string ph, sh;
    int pp = 0, sp = 0;
    if (!endpoint(peer, peer_len, ph, pp) || !endpoint(self, self_len, sh, sp)) continue;
    if (pp == remote_port && sp == local_port && plain(ph) == plain(remote_addr) && plain(sh) == plain(local_addr)) {
      fd_ = int(fd);
      break;
    }
  }
  closedir(dir);
}

bool ConnectionProbe::connected() const {
  if (fd_ < 0) return true;
  pollfd p{fd_, POLLIN, 0};
  if (poll(&p, 1, 0) <= 0) return true;  // nothing to read: still open
  if (p.revents & (POLLERR | POLLHUP | POLLNVAL)) return false;
  char c;
  const ssize_t n = recv(fd_, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  return n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR));
}

}  // namespace mf::serve
