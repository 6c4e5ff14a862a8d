// The connection pool's overflow lane: jobs past the main threads run on overflow threads.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "serve/connection_pool.h"

namespace mf::serve {
namespace {

TEST(ConnectionPool, JobsPastTheMainThreadsRunOnTheOverflowLane) {
  ConnectionPool pool(2, 1);
  std::atomic<bool> release{false};
  std::atomic<int> main_started{0}, overflow_runs{0}, main_runs_after{0};
  auto holder = [&] {
    EXPECT_FALSE(ConnectionPool::on_overflow_thread());
    ++main_started;
    while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  };
  pool.enqueue(holder);
  pool.enqueue(holder);
  pool.enqueue([&] { overflow_runs += ConnectionPool::on_overflow_thread(); });  // both main threads taken
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (overflow_runs == 0 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_EQ(overflow_runs, 1);  // ran while the holders still hold the main lane
  EXPECT_EQ(main_started, 2);
  release = true;
  while (main_started < 2) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the holders return and free their threads
  pool.enqueue([&] { main_runs_after += !ConnectionPool::on_overflow_thread(); });
  pool.shutdown();  // drains queued jobs
  EXPECT_EQ(main_runs_after, 1);
  EXPECT_FALSE(ConnectionPool::on_overflow_thread());  // not a pool thread
}

}  // namespace
}  // namespace mf::serve
