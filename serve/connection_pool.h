// httplib's connection threads, with an overflow lane. httplib hands every accepted connection
// to a task queue; its own ThreadPool queues connections without limit once every thread is
// busy, so a burst beyond --http-threads would wait silently instead of getting the 429 the
// server promises. Here, a connection that arrives while every main thread is taken goes to
// a few overflow threads instead; handlers running there answer generation requests with 429
// at once (ConnectionPool::on_overflow_thread), cheap endpoints (/health, /metrics) as usual.
#pragma once
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include <httplib.h>

namespace mf::serve {

class ConnectionPool : public httplib::TaskQueue {
 public:
  ConnectionPool(size_t threads, size_t overflow_threads);
  ~ConnectionPool() override;

  void enqueue(std::function<void()> fn) override;
  void shutdown() override;

  // True on an overflow thread: the server is past its connection capacity.
  static bool on_overflow_thread();

  // Connections running or queued on the main lane; a new one overflows once this reaches
  // the main thread count.
  size_t main_load();

 private:
  struct Lane {
    std::deque<std::function<void()>> jobs;
    size_t threads = 0, busy = 0;
    std::condition_variable cv;
  };
  void work(Lane& lane, bool overflow);

  std::mutex mu_;
  Lane main_, overflow_;
  bool shutdown_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace mf::serve
