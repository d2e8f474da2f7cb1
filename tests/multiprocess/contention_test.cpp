// Many processes at once: a FileLock-guarded counter loses no update, and a BoundedSemaphore never
// lets more than its maximum in. The evidence is clock-free: the counter file itself, and an
// occupancy counter in a shared mapping that every worker updates inside its critical section.
#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
#include <string>
#include <vector>

#include "locksmith/semaphore.hpp"
#include "mp_support.hpp"
#include "mp_util.hpp"
#include "test_support.hpp"

namespace locksmith::mp {
namespace {

std::string backend_name(Backend b) {
  return b == Backend::posix ? "posix" : std::string(to_string(b));
}

// Starts every worker, waits until all are READY, then lets them go together.
void start_together(std::vector<Subprocess>& workers) {
  for (auto& w : workers) ASSERT_EQ(w.read_line().value_or("<no reply>"), "READY");
  for (auto& w : workers) ASSERT_TRUE(w.send("go"));
}

void expect_all_done(std::vector<Subprocess>& workers) {
  for (auto& w : workers) {
    EXPECT_EQ(w.read_line().value_or("<no reply>"), "DONE");
    EXPECT_EQ(w.wait_exit(), 0);
  }
}

class ContentionTest : public ::testing::TestWithParam<Backend> {
 protected:
  Backend backend() const { return GetParam(); }
  test::TempDir dir_;
};

// N processes each do K read-modify-write increments of a counter file under the lock: any
// overlap of two critical sections can lose an update, so the final value must be exactly N*K.
TEST_P(ContentionTest, LockedCounterLosesNoUpdate) {
  constexpr int kWorkers = 4;
  constexpr int kIncrements = 150;
  const auto counter = dir_ / "counter";
  std::ofstream(counter) << "0";
  std::vector<Subprocess> workers;
  for (int i = 0; i < kWorkers; ++i) {
    workers.push_back(
        Subprocess::self("counter", {backend_name(backend()), (dir_ / "lock").string(),
                                     counter.string(), std::to_string(kIncrements)}));
  }
  ASSERT_NO_FATAL_FAILURE(start_together(workers));
  expect_all_done(workers);
  std::ifstream in(counter);
  long value = -1;
  in >> value;
  EXPECT_EQ(value, kWorkers * kIncrements);
}

// Six processes hammer a BoundedSemaphore(max=2); the occupancy seen inside never exceeds 2 and
// every worker gets in every time it asked.
TEST_P(ContentionTest, SemaphoreNeverExceedsItsBound) {
  constexpr int kWorkers = 6;
  constexpr int kIterations = 40;
  constexpr int kMax = 2;
  const auto shm_path = dir_ / "occupancy";
  SharedCounters::create(shm_path);
  std::vector<Subprocess> workers;
  for (int i = 0; i < kWorkers; ++i) {
    workers.push_back(Subprocess::self(
        "sem-worker", {backend_name(backend()), dir_.path().string(), "sem", std::to_string(kMax),
                       shm_path.string(), std::to_string(i), std::to_string(kIterations)}));
  }
  ASSERT_NO_FATAL_FAILURE(start_together(workers));
  expect_all_done(workers);

  SharedCounters shm(shm_path);
  ASSERT_TRUE(shm.ok());
  EXPECT_LE(shm.max_occupancy().load(), kMax);
  EXPECT_GE(shm.max_occupancy().load(), 1);
  EXPECT_EQ(shm.occupancy().load(), 0);
  for (int i = 0; i < kWorkers; ++i) {
    EXPECT_EQ(shm.entries(static_cast<std::size_t>(i)).load(), kIterations) << "worker " << i;
  }
}

// Deterministic slot accounting across processes: slots go out in numeric order, the bound holds
// for a third process and for this one, and a slot comes back by release or by SIGKILL.
TEST_P(ContentionTest, SemaphoreSlotsAcrossProcesses) {
  auto sem_child = [&] {
    return Subprocess::self("sem", {backend_name(backend()), dir_.path().string(), "pool", "2"});
  };
  Subprocess a = sem_child();
  Subprocess b = sem_child();
  Subprocess c = sem_child();
  ASSERT_EQ(a.request("acquire"), "SLOT 0");
  ASSERT_EQ(b.request("acquire"), "SLOT 1");
  EXPECT_EQ(c.request("acquire"), "BUSY");
  SemaphoreOptions o;
  o.backend = backend();
  BoundedSemaphore mine(2, "pool", dir_.path(), o);
  EXPECT_FALSE(mine.try_lock());

  ASSERT_EQ(a.request("release"), "OK");
  EXPECT_EQ(c.request("acquire"), "SLOT 0");
  EXPECT_FALSE(mine.try_lock());
  ASSERT_EQ(b.kill(SIGKILL), -SIGKILL);
  ASSERT_TRUE(mine.try_lock());
  EXPECT_EQ(mine.held_slot(), 1);
  EXPECT_EQ(a.request("acquire"), "BUSY");
  mine.unlock();
}

std::string param_name(const ::testing::TestParamInfo<Backend>& info) {
  return backend_name(info.param);
}

INSTANTIATE_TEST_SUITE_P(Backends, ContentionTest,
                         ::testing::Values(Backend::flock, Backend::posix, Backend::ofd),
                         param_name);

}  // namespace
}  // namespace locksmith::mp
