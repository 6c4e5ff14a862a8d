#include "train/distributed.h"

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>

#include "core/error.h"

namespace mf {

namespace {

// This machine's address on the route to `host` (a UDP "connect" sends nothing): Gloo binds
// there, so ranks on other machines reach it. Loopback masters give 127.0.0.1.
std::string local_address_towards(const std::string& host) {
  addrinfo hints{}, *res = nullptr;
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_DGRAM;
  if (getaddrinfo(host.c_str(), "9", &hints, &res) != 0 || !res) fail("--master host '", host, "' does not resolve");
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in local{};
  socklen_t len = sizeof local;
  const bool ok = fd >= 0 && connect(fd, res->ai_addr, res->ai_addrlen) == 0 &&
                  getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) == 0;
  freeaddrinfo(res);
  if (fd >= 0) close(fd);
  if (!ok) fail("no route from this machine to the master '", host, "'");
  char buf[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &local.sin_addr, buf, sizeof buf);
  return buf;
}

}  // namespace

struct DataParallel::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group;
};

DataParallel::DataParallel(const DistOptions& o) : opts_(o), impl_(std::make_unique<Impl>()) {
  check_dist_options(o);
  auto [addr, port] = split_master(o.master);
  const std::string local = o.iface.empty() ? local_address_towards(addr) : "";
  const auto timeout = std::chrono::milliseconds(int64_t(o.timeout_s) * 1000);
  try {
    c10d::TCPStoreOptions so;
    so.port = port;
    so.isServer = o.rank == 0;
    so.numWorkers = o.world_size;
    so.waitWorkers = true;
    so.timeout = timeout;
    impl_->store = c10::make_intrusive<c10d::TCPStore>(addr, so);
    auto go = c10d::ProcessGroupGloo::Options::create(timeout);
    go->devices.push_back(o.iface.empty() ? c10d::ProcessGroupGloo::createDeviceForHostname(local)
                                          : c10d::ProcessGroupGloo::createDeviceForInterface(o.iface));
    go->threads = 1;
    impl_->group = c10::make_intrusive<c10d::ProcessGroupGloo>(impl_->store, o.rank, o.world_size, go);
  } catch (const std::exception& e) {
    std::string what = e.what();
    what = what.substr(0, what.find('\n'));  // c10::Error carries a backtrace
    fail("rank ", o.rank, " of ", o.world_size, ": could not join the group at ", o.master, " within ", o.timeout_s,
         " s: ", what);
  }
}

DataParallel::~DataParallel() = default;

void DataParallel::average_gradients(const std::vector<torch::Tensor>& params) {
  std::vector<torch::Tensor> grads;
  for (const torch::Tensor& p : params)
    grads.push_back(p.grad().defined() ? p.grad().reshape({-1}) : torch::zeros({p.numel()}, p.options()));
  std::vector<torch::Tensor> flat = {torch::cat(grads)};  // [total parameters]
  impl_->group->allreduce(flat)->wait();
  flat[0].div_(double(opts_.world_size));
  int64_t off = 0;
  for (const torch::Tensor& p : params) {
    const int64_t n = p.numel();
    // A parameter without a gradient (a frozen expert, the same on every rank) keeps none, so
    // the optimiser leaves it alone.
    if (p.grad().defined()) p.mutable_grad().copy_(flat[0].narrow(0, off, n).view_as(p));
    off += n;
  }
}

double DataParallel::average(double v) {
  std::vector<torch::Tensor> t = {torch::tensor({v}, torch::kFloat64)};
  impl_->group->allreduce(t)->wait();
  return t[0].item<double>() / opts_.world_size;
}

torch::Tensor DataParallel::sum(const torch::Tensor& t) {
  std::vector<torch::Tensor> v = {t.detach().clone()};
  impl_->group->allreduce(v)->wait();
  return v[0];
}

void DataParallel::barrier() { impl_->group->barrier()->wait(); }

}  // namespace mf
