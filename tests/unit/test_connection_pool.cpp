// The connection pool's overflow lane: jobs past the main threads run on overflow threads.
// Every wait polls observable state with a generous deadline, so a loaded machine only slows
// the test down and never changes its outcome.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <thread>

#include "serve/connection_pool.h"

namespace mf::serve {
namespace {

// Polls until `done` holds or 30 s pass; returns whether it held.
bool wait_until(const std::function<bool()>& done) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

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
  EXPECT_EQ(pool.main_load(), 2u);  // counted at once, running or still queued
  pool.enqueue([&] { overflow_runs += ConnectionPool::on_overflow_thread(); });  // main lane full
  ASSERT_TRUE(wait_until([&] { return overflow_runs == 1 && main_started == 2; }));
  EXPECT_EQ(pool.main_load(), 2u);  // the overflow job ran while the holders held the main lane
  release = true;
  ASSERT_TRUE(wait_until([&] { return pool.main_load() == 0; }));  // holders returned
  pool.enqueue([&] { main_runs_after += !ConnectionPool::on_overflow_thread(); });
  pool.shutdown();  // drains queued jobs
  EXPECT_EQ(main_runs_after, 1);
  EXPECT_EQ(overflow_runs, 1);
  EXPECT_FALSE(ConnectionPool::on_overflow_thread());  // not a pool thread
}

}  // namespace
}  // namespace mf::serve
