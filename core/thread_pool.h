// A fixed pool of worker threads for data-parallel kernels.
// parallel_for cuts [0, n) into one contiguous chunk per thread (long streams suit the
// weight prefetch). Each chunk is claimed before it runs, and the caller, its own chunk
// done, claims and runs any chunk whose worker has not started: a worker that the OS has
// descheduled (the machine is shared with HTTP threads, clients, other jobs) then delays
// nothing unless it already holds a chunk. Workers spin briefly between jobs (decode
// issues thousands of small jobs per second), then sleep; the caller's wait yields after
// a spin.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace mf {

class ThreadPool {
 public:
  explicit ThreadPool(int n_threads);  // n_threads <= 0: hardware concurrency
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Calls fn(thread_index, begin, end) on disjoint chunks covering [0, n), each chunk a
  // multiple of `grain` (except the last); a thread may run several chunks. Blocks until
  // all chunks are done. Not reentrant: fn must not call parallel_for on the same pool.
  // At most kMaxThreads threads (one claim bit each).
  static constexpr int kMaxThreads = 32;
  void parallel_for(int64_t n, int64_t grain, const std::function<void(int, int64_t, int64_t)>& fn);

 private:
  // The job state in one word, so that claiming a chunk also checks that the job is still
  // the one the worker woke for: generation (high 32 bits) | claimed chunks (one bit each).
  void worker(int index);
  // Claims and runs chunk `chunk` of job `gen` if no one has; false if taken or stale.
  bool try_run(int index, uint32_t gen, int chunk);

  int n_threads_;
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<uint64_t> state_{0};
  std::atomic<int64_t> done_{0};  // chunks finished in the current job
  std::atomic<bool> stop_{false};
  uint32_t generation_ = 0;  // caller side only; wraps with the 32 bits of state_
  // The current job; valid while any of its chunks is unfinished.
  const std::function<void(int, int64_t, int64_t)>* job_ = nullptr;
  int64_t job_n_ = 0, job_chunk_ = 1, job_n_chunks_ = 0;
};

}  // namespace mf
