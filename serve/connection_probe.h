// Tells whether an HTTP client is still connected while its request is being served.
// cpp-httplib 0.11 (Debian 12) does not expose the socket to handlers, so the probe finds
// it among the process's descriptors by its local and remote address; the socket stays
// open (owned by httplib) until the handler returns. Linux only; when the socket cannot be
// found the probe reports "connected" (generation then runs to its end).
#pragma once
#include <string>

namespace mf::serve {

class ConnectionProbe {
 public:
  ConnectionProbe(const std::string& local_addr, int local_port, const std::string& remote_addr, int remote_port);
  bool found() const { return fd_ >= 0; }
  // False once the peer has closed or reset the connection (EOF or error on the socket).
  bool connected() const;

 private:
  int fd_ = -1;
};

}  // namespace mf::serve
