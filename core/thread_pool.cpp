#include "core/thread_pool.h"

#include <algorithm>
#include <immintrin.h>

namespace mf {

namespace {

// Worker spin between jobs (~100 us): decode's next job follows within microseconds;
// longer idle periods sleep so that the pool does not take CPU from other threads.
constexpr int kWorkerSpin = 2000;
// The caller's spin on unfinished chunks before it starts yielding its core.
constexpr int kCallerSpin = 1000;

uint32_t gen_of(uint64_t s) { return uint32_t(s >> 32); }

}  // namespace

ThreadPool::ThreadPool(int n_threads) {
  n_threads_ = n_threads > 0 ? n_threads : std::max(1u, std::thread::hardware_concurrency());
  n_threads_ = std::min(n_threads_, kMaxThreads);
  for (int i = 1; i < n_threads_; ++i) threads_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    state_.store(uint64_t(++generation_) << 32, std::memory_order_release);
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

bool ThreadPool::try_run(int index, uint32_t gen, int chunk) {
  const uint64_t bit = uint64_t(1) << chunk;
  uint64_t s = state_.load(std::memory_order_acquire);
  do {
    if (gen_of(s) != gen || (s & bit)) return false;
  } while (!state_.compare_exchange_weak(s, s | bit, std::memory_order_acq_rel, std::memory_order_acquire));
  // The chunk is ours, and job `gen` stays valid until we count it done.
  const int64_t begin = std::min(job_n_, chunk * job_chunk_);
  const int64_t end = std::min(job_n_, begin + job_chunk_);
  if (begin < end) (*job_)(index, begin, end);
  done_.fetch_add(1, std::memory_order_release);
  return true;
}

void ThreadPool::parallel_for(int64_t n, int64_t grain, const std::function<void(int, int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  const int64_t n_grains = (n + grain - 1) / grain;
  if (n_threads_ == 1 || n_grains == 1) {
    fn(0, 0, n);
    return;
  }
  job_ = &fn;
  job_n_ = n;
  job_chunk_ = (n_grains + n_threads_ - 1) / n_threads_ * grain;
  job_n_chunks_ = (n + job_chunk_ - 1) / job_chunk_;  // rounding may leave fewer than threads
  done_.store(0, std::memory_order_relaxed);
  const uint32_t gen = ++generation_;
  // Chunks past job_n_chunks_ (when there are fewer than threads) start out claimed.
  const uint64_t unused = ((uint64_t(1) << n_threads_) - 1) & ~((uint64_t(1) << job_n_chunks_) - 1);
  {
    // Under the lock so that a worker about to sleep cannot miss the new generation.
    std::lock_guard<std::mutex> lock(mu_);
    state_.store(uint64_t(gen) << 32 | unused, std::memory_order_release);
  }
  cv_.notify_all();
  for (int c = 0; c < job_n_chunks_; ++c) try_run(0, gen, c);  // ours first, then any not started
  for (int spin = 0; done_.load(std::memory_order_acquire) != job_n_chunks_; ++spin) {
    if (spin < kCallerSpin) _mm_pause();
    else std::this_thread::yield();  // a worker holding a chunk may be waiting for this core
  }
}

void ThreadPool::worker(int index) {
  uint32_t seen = 0;
  for (;;) {
    for (int spin = 0; spin < kWorkerSpin && gen_of(state_.load(std::memory_order_acquire)) == seen; ++spin)
      _mm_pause();
    if (gen_of(state_.load(std::memory_order_acquire)) == seen) {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return gen_of(state_.load(std::memory_order_acquire)) != seen; });
    }
    seen = gen_of(state_.load(std::memory_order_acquire));
    if (stop_) return;
    try_run(index, seen, index);  // false if the caller took it, or it is unused
  }
}

}  // namespace mf
