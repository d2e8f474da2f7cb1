// BoundedSemaphore and NamedBoundedSemaphore specifics.
#include <pthread.h>
#include <signal.h>

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <regex>
#include <thread>
#include <vector>

#include "locksmith/semaphore.hpp"
#include "test_support.hpp"
#include "unit_helpers.hpp"

namespace locksmith::unit {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::vector<std::unique_ptr<BoundedSemaphore>> holders(unsigned n, unsigned max,
                                                       const fs::path& dir) {
  std::vector<std::unique_ptr<BoundedSemaphore>> v;
  for (unsigned i = 0; i < n; ++i) {
    v.push_back(std::make_unique<BoundedSemaphore>(max, "sem", dir));
    EXPECT_TRUE(v.back()->try_lock()) << "holder " << i;
  }
  return v;
}

// An OS error names the slot file that failed (the file the user can look at), not DIR/NAME.
TEST(BoundedSemaphore, ErrorsNameTheSlotFileThatFailed) {
  test::TempDir dir;
  BoundedSemaphore first(2, "jobs", dir.path());
  ASSERT_TRUE(first.try_lock());               // slot 00
  fs::create_directory(dir / "jobs.01.lock");  // slot 01 cannot be opened as a file
  BoundedSemaphore second(2, "jobs", dir.path());
  try {
    (void)second.try_lock();
    ADD_FAILURE() << "a directory as slot file was accepted";
  } catch (const LockError& e) {
    EXPECT_EQ(e.target(), (dir / "jobs.01.lock").string()) << e.what();
  }
  EXPECT_EQ(second.describe().failed_path, (dir / "jobs.01.lock").string());
  EXPECT_EQ(second.describe().target, (dir / "jobs").string());
  first.unlock();
  ASSERT_TRUE(second.try_lock());  // slot 00 again: nothing failed this time
  EXPECT_FALSE(second.describe().failed_path.has_value());
  second.unlock();
  EXPECT_FALSE(second.describe().failed_path.has_value());
}

TEST(BoundedSemaphore, SlotNamesHaveTwoDigits) {
  test::TempDir dir;
  BoundedSemaphore s(3, "jobs", dir.path());
  EXPECT_EQ(s.slot_path(0), dir / "jobs.00.lock");
  EXPECT_EQ(s.slot_path(7), dir / "jobs.07.lock");
  EXPECT_EQ(s.slot_path(12), dir / "jobs.12.lock");
  EXPECT_EQ(s.slot_path(123), dir / "jobs.123.lock");
  EXPECT_EQ(s.maximum(), 3u);
  EXPECT_EQ(s.name(), "jobs");
  EXPECT_EQ(s.held_slot(), -1);
}

TEST(BoundedSemaphore, SlotsAreTakenInNumericOrder) {
  test::TempDir dir;
  auto held = holders(3, 3, dir.path());
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(held[static_cast<std::size_t>(i)]->held_slot(), i);
    EXPECT_EQ(held[static_cast<std::size_t>(i)]->describe().slot,
              (dir / ("sem.0" + std::to_string(i) + ".lock")).string());
  }
  EXPECT_EQ(listing(dir.path()),
            (std::set<std::string>{"sem.00.lock", "sem.01.lock", "sem.02.lock"}));
  BoundedSemaphore fourth(3, "sem", dir.path());
  EXPECT_FALSE(fourth.try_lock());
  EXPECT_EQ(fourth.held_slot(), -1);
  held[1]->unlock();
  EXPECT_EQ(held[1]->held_slot(), -1);
  ASSERT_TRUE(fourth.try_lock());
  EXPECT_EQ(fourth.held_slot(), 1);
}

TEST(BoundedSemaphore, SlotHeldByAPlainFileLockCounts) {
  // Interoperability: a portalocker-style holder of NAME.00.lock takes slot 0.
  test::TempDir dir;
  FileLock slot0(dir / "sem.00.lock");
  slot0.lock();
  BoundedSemaphore s(2, "sem", dir.path());
  ASSERT_TRUE(s.try_lock());
  EXPECT_EQ(s.held_slot(), 1);
  BoundedSemaphore t(2, "sem", dir.path());
  EXPECT_FALSE(t.try_lock());
}

// A waiter on a full semaphore blocks on every slot at once and is granted whichever slot is
// released first.
class SemaphoreWaiter : public ::testing::TestWithParam<int> {};

INSTANTIATE_TEST_SUITE_P(ReleasedSlot, SemaphoreWaiter, ::testing::Values(0, 1, 2));

TEST_P(SemaphoreWaiter, IsGrantedTheReleasedSlot) {
  test::TempDir dir;
  auto held = holders(3, 3, dir.path());
  BoundedSemaphore waiter(3, "sem", dir.path());
  bool got = false;
  std::thread t([&] { got = waiter.try_lock_for(kWaitLimit); });
  EXPECT_TRUE(wait_for_blocked_waiters(dir.path(), 3)) << "not blocked on every slot";
  held[static_cast<std::size_t>(GetParam())]->unlock();
  t.join();
  ASSERT_TRUE(got);
  EXPECT_EQ(waiter.held_slot(), GetParam());
  // The other slots are untouched: their holders still hold them, and the semaphore is full.
  BoundedSemaphore another(3, "sem", dir.path());
  EXPECT_FALSE(another.try_lock());
  EXPECT_EQ(blocked_waiters(dir.path()), 0) << "a slot waiter thread was left behind";
}

TEST(BoundedSemaphore, WaiterIsGrantedASlotByLock) {
  test::TempDir dir;
  auto held = holders(2, 2, dir.path());
  BoundedSemaphore waiter(2, "sem", dir.path());
  std::thread t([&] { waiter.lock(); });  // no timeout configured: waits forever
  EXPECT_TRUE(wait_for_blocked_waiters(dir.path(), 2));
  held[1].reset();
  t.join();
  EXPECT_EQ(waiter.held_slot(), 1);
}

TEST(BoundedSemaphore, FullSemaphoreTimesOut) {
  test::TempDir dir;
  auto held = holders(2, 2, dir.path());
  BoundedSemaphore waiter(2, "sem", dir.path());
  auto start = Clock::now();
  EXPECT_FALSE(waiter.try_lock_for(100ms));
  EXPECT_GE(Clock::now() - start, 100ms);
  EXPECT_EQ(waiter.acquire(LockMode::exclusive, Clock::time_point::min()), errc::busy);

  SemaphoreOptions o;
  o.timeout = 50ms;
  BoundedSemaphore timed(2, "sem", dir.path(), o);
  start = Clock::now();
  EXPECT_THROW(timed.lock(), LockTimeout);
  EXPECT_GE(Clock::now() - start, 50ms);

  SemaphoreOptions f;
  f.fail_when_locked = true;
  f.timeout = 10s;  // fail_when_locked wins
  BoundedSemaphore failing(2, "sem", dir.path(), f);
  start = Clock::now();
  try {
    failing.lock();
    ADD_FAILURE() << "acquired a full semaphore";
  } catch (const LockTimeout&) {
    ADD_FAILURE() << "fail_when_locked waited";
  } catch (const AlreadyLocked& e) {
    EXPECT_NE(std::string(e.what()).find("cannot lock '" + (dir / "sem").string() + "'"),
              std::string::npos)
        << e.what();
  }
  EXPECT_LT(Clock::now() - start, 5s);
}

TEST(BoundedSemaphore, PollingWaitersWhenTheWakeSignalIsBlocked) {
  // The slot waiter threads inherit the blocked signal mask, so every slot wait polls.
  test::TempDir dir;
  auto held = holders(2, 2, dir.path());
  BoundedSemaphore waiter(2, "sem", dir.path());
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  bool timed_out_in_time = false;
  bool got = false;
  std::thread t([&] {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, wake_signal());
    ::pthread_sigmask(SIG_BLOCK, &set, nullptr);
    const auto start = Clock::now();
    timed_out_in_time = !waiter.try_lock_for(60ms) && Clock::now() - start >= 60ms;
    const char c = 'w';
    EXPECT_EQ(::write(ready[1], &c, 1), 1);
    got = waiter.try_lock_for(kWaitLimit);
  });
  char c = 0;
  EXPECT_EQ(::read(ready[0], &c, 1), 1);
  held[0]->unlock();
  t.join();
  EXPECT_TRUE(timed_out_in_time);
  EXPECT_TRUE(got);
  EXPECT_EQ(waiter.held_slot(), 0);
  ::close(ready[0]);
  ::close(ready[1]);
}

TEST(BoundedSemaphore, BadMaximumIsRejected) {
  test::TempDir dir;
  for (unsigned bad : {0u, 1001u}) {
    try {
      BoundedSemaphore s(bad, "sem", dir.path());
      ADD_FAILURE() << "maximum " << bad << " accepted";
    } catch (const LockError& e) {
      EXPECT_EQ(e.code(), std::errc::invalid_argument);
      EXPECT_NE(std::string(e.what()).find((dir / "sem").string()), std::string::npos);
    }
  }
  EXPECT_NO_THROW(BoundedSemaphore(1000, "sem", dir.path()));
  EXPECT_TRUE(listing(dir.path()).empty());
}

TEST(BoundedSemaphore, SharedAndReacquireAreRefused) {
  test::TempDir dir;
  BoundedSemaphore s(2, "sem", dir.path());
  EXPECT_EQ(s.acquire(LockMode::shared, kForever), std::errc::invalid_argument);
  s.lock();
  EXPECT_EQ(s.acquire(LockMode::exclusive, kForever), std::errc::resource_deadlock_would_occur);
  EXPECT_EQ(s.held_slot(), 0);
  s.unlock();
  EXPECT_EQ(s.release(), errc::not_locked);
}

TEST(BoundedSemaphore, MissingDirectoryFailsNamingTheSlot) {
  test::TempDir dir;
  BoundedSemaphore s(2, "sem", dir / "missing");
  try {
    s.lock();
    ADD_FAILURE() << "locked in a missing directory";
  } catch (const LockError& e) {
    EXPECT_EQ(e.code(), std::errc::no_such_file_or_directory);
    EXPECT_NE(std::string(e.what()).find("cannot lock '" + (dir / "missing" / "sem").string()),
              std::string::npos)
        << e.what();
  }
  EXPECT_TRUE(listing(dir.path()).empty());
}

TEST(BoundedSemaphore, OtherBackends) {
  test::TempDir dir;
  for (Backend b : {Backend::posix, Backend::ofd}) {
    SemaphoreOptions o;
    o.backend = b;
    BoundedSemaphore s(1, "sem" + std::string(to_string(b)), dir.path(), o);
    ASSERT_TRUE(s.try_lock());
    EXPECT_EQ(s.describe().mechanism, to_string(b));
    s.unlock();
  }
}

TEST(NamedBoundedSemaphore, RandomNames) {
  test::TempDir dir;
  NamedBoundedSemaphore a(2, dir.path());
  NamedBoundedSemaphore b(2, dir.path());
  const std::regex pattern("bounded_semaphore_[0-9a-f]{16}");
  EXPECT_TRUE(std::regex_match(a.name(), pattern)) << a.name();
  EXPECT_TRUE(std::regex_match(b.name(), pattern)) << b.name();
  EXPECT_NE(a.name(), b.name());
  a.lock();
  EXPECT_EQ(a.describe().slot, (dir / (a.name() + ".00.lock")).string());
  b.lock();  // a different semaphore: its slot 0 is free
  EXPECT_EQ(b.held_slot(), 0);
  EXPECT_EQ(a.describe().kind, "sem");
}

}  // namespace
}  // namespace locksmith::unit
