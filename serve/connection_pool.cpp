#include "serve/connection_pool.h"

#include <algorithm>

namespace mf::serve {

namespace {
thread_local bool t_overflow = false;
}

ConnectionPool::ConnectionPool(size_t threads, size_t overflow_threads) {
  main_.threads = std::max<size_t>(1, threads);
  overflow_.threads = std::max<size_t>(1, overflow_threads);
  for (size_t i = 0; i < main_.threads; ++i) threads_.emplace_back([this] { work(main_, false); });
  for (size_t i = 0; i < overflow_.threads; ++i) threads_.emplace_back([this] { work(overflow_, true); });
}

ConnectionPool::~ConnectionPool() { shutdown(); }

bool ConnectionPool::on_overflow_thread() { return t_overflow; }

size_t ConnectionPool::main_load() {
  std::lock_guard<std::mutex> lock(mu_);
  return main_.busy + main_.jobs.size();
}

void ConnectionPool::enqueue(std::function<void()> fn) {
  Lane* lane;
  {
    std::lock_guard<std::mutex> lock(mu_);
    // Main lane only if a main thread will be free for it (each queued job has one waiting).
    lane = main_.busy + main_.jobs.size() < main_.threads ? &main_ : &overflow_;
    lane->jobs.push_back(std::move(fn));
  }
  lane->cv.notify_one();
}

void ConnectionPool::work(Lane& lane, bool overflow) {
  t_overflow = overflow;
  for (;;) {
    std::function<void()> fn;
    {
      std::unique_lock<std::mutex> lock(mu_);
      lane.cv.wait(lock, [&] { return shutdown_ || !lane.jobs.empty(); });
      if (lane.jobs.empty()) return;  // shut down and nothing left
      fn = std::move(lane.jobs.front());
      lane.jobs.pop_front();
      ++lane.busy;
    }
    fn();
    std::lock_guard<std::mutex> lock(mu_);
    --lane.busy;
  }
}

void ConnectionPool::shutdown() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (shutdown_) return;
    shutdown_ = true;
  }
  main_.cv.notify_all();
  overflow_.cv.notify_all();
  for (std::thread& t : threads_) t.join();
}

}  // namespace mf::serve
