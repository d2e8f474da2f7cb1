// FileLock and the lock backends across processes: exclusion, shared readers, every way a lock is
// released (unlock, close, exit, SIGKILL), what fork() and threads do with each backend, and
// timed waits. Each test runs for flock, posix (fcntl) and ofd.
//
// The other processes are this binary re-run as the `locker` role (child_roles.cpp); the test
// drives them line by line over pipes. The test process itself probes with a fresh FileLock that
// it releases at once (parent_can_lock).
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <future>
#include <string>
#include <thread>

#include "locksmith/error.hpp"
#include "locksmith/file_lock.hpp"
#include "mp_support.hpp"
#include "test_support.hpp"

namespace locksmith::mp {
namespace {

using namespace std::chrono_literals;

std::string backend_name(Backend b) {
  return b == Backend::posix ? "posix" : std::string(to_string(b));
}

LockOptions options_for(Backend b) {
  LockOptions o;
  o.backend = b;
  return o;
}

class ProcessLockTest : public ::testing::TestWithParam<Backend> {
 protected:
  Backend backend() const { return GetParam(); }

  Subprocess locker() {
    return Subprocess::self("locker", {backend_name(backend()), path_.string()});
  }

  // Whether this process can take the lock now, without waiting (released again at once).
  bool parent_can_lock(LockMode mode = LockMode::exclusive) const {
    FileLock probe(path_, options_for(backend()));
    const auto ec = probe.acquire(mode, Clock::time_point::min());
    if (ec && !is_contended(ec)) ADD_FAILURE() << "probe failed: " << ec.message();
    return !ec;
  }

  test::TempDir dir_;
  std::filesystem::path path_ = dir_ / "lock";
};

TEST_P(ProcessLockTest, ExclusiveHolderExcludesOtherProcessesUntilUnlock) {
  Subprocess holder = locker();
  Subprocess other = locker();
  ASSERT_EQ(holder.request("acquire ex"), "LOCKED");
  EXPECT_FALSE(parent_can_lock(LockMode::exclusive));
  EXPECT_FALSE(parent_can_lock(LockMode::shared));
  EXPECT_EQ(other.request("acquire ex"), "BUSY");
  EXPECT_EQ(other.request("acquire sh"), "BUSY");

  ASSERT_EQ(holder.request("release"), "OK");
  EXPECT_TRUE(parent_can_lock());
  EXPECT_EQ(other.request("acquire ex"), "LOCKED");
  EXPECT_EQ(holder.request("acquire ex"), "BUSY");
}

TEST_P(ProcessLockTest, SharedHoldersTogetherButNeverWithAWriter) {
  Subprocess reader1 = locker();
  Subprocess reader2 = locker();
  Subprocess writer = locker();
  ASSERT_EQ(reader1.request("acquire sh"), "LOCKED");
  ASSERT_EQ(reader2.request("acquire sh"), "LOCKED");
  EXPECT_EQ(writer.request("acquire ex"), "BUSY");
  EXPECT_TRUE(parent_can_lock(LockMode::shared));
  EXPECT_FALSE(parent_can_lock(LockMode::exclusive));

  ASSERT_EQ(reader1.request("release"), "OK");
  EXPECT_EQ(writer.request("acquire ex"), "BUSY");  // reader2 still holds
  ASSERT_EQ(reader2.request("release"), "OK");
  ASSERT_EQ(writer.request("acquire ex"), "LOCKED");
  EXPECT_EQ(reader1.request("acquire sh"), "BUSY");
  EXPECT_FALSE(parent_can_lock(LockMode::shared));
}

TEST_P(ProcessLockTest, ReleasedByClosingTheLockedFd) {
  Subprocess holder = locker();
  ASSERT_EQ(holder.request("open"), "FD 0");
  ASSERT_EQ(holder.request("lock 0 ex"), "LOCKED");
  EXPECT_FALSE(parent_can_lock());
  ASSERT_EQ(holder.request("close 0"), "OK");  // close without unlock
  EXPECT_TRUE(parent_can_lock());
}

// posix locks belong to the process and die with ANY close of the file in that process;
// flock and OFD locks belong to the open file description and survive an unrelated close.
TEST_P(ProcessLockTest, ClosingAnotherFdOfTheFileDropsOnlyPosixLocks) {
  Subprocess holder = locker();
  ASSERT_EQ(holder.request("acquire ex"), "LOCKED");
  EXPECT_FALSE(parent_can_lock());
  ASSERT_EQ(holder.request("touch-close"), "OK");
  if (backend() == Backend::posix) {
    EXPECT_TRUE(parent_can_lock()) << "posix lock survived the close of another fd";
  } else {
    EXPECT_FALSE(parent_can_lock()) << "lock lost by closing an unrelated fd";
  }
}

TEST_P(ProcessLockTest, ReleasedByNormalExitOfTheHolder) {
  Subprocess holder = locker();
  ASSERT_EQ(holder.request("acquire ex"), "LOCKED");
  EXPECT_FALSE(parent_can_lock());
  ASSERT_TRUE(holder.send("exit"));  // _exit(0): no unlock, no destructor
  ASSERT_EQ(holder.wait_exit(), 0);
  EXPECT_TRUE(parent_can_lock());
}

TEST_P(ProcessLockTest, ReleasedBySigkillOfTheHolder) {
  Subprocess holder = locker();
  ASSERT_EQ(holder.request("acquire ex"), "LOCKED");
  EXPECT_FALSE(parent_can_lock());
  ASSERT_EQ(holder.kill(SIGKILL), -SIGKILL);
  EXPECT_TRUE(parent_can_lock());
}

// flock/ofd: the lock belongs to the open file description, which fork() shares: the forked
// child's inherited fd is the same lock and keeps it alive after the holder closed its own fd.
// posix: the lock belongs to the process and is not inherited: the forked child conflicts with
// its parent's lock and holds nothing once the parent lets go.
TEST_P(ProcessLockTest, ForkSharesFlockAndOfdLocksButNotPosixLocks) {
  const bool shared_by_fork = backend() != Backend::posix;
  Subprocess holder = locker();
  ASSERT_EQ(holder.request("open"), "FD 0");
  ASSERT_EQ(holder.request("lock 0 ex"), "LOCKED");

  // A separate open() in a forked child is a separate owner for every backend.
  EXPECT_EQ(holder.request("fork-try-open ex"), "BUSY");
  // The inherited fd: the same lock (flock, ofd) or a conflicting other process (posix).
  EXPECT_EQ(holder.request("fork-try 0 ex"), shared_by_fork ? "LOCKED" : "BUSY");
  // The probes have exited; their exit did not release the holder's lock.
  EXPECT_FALSE(parent_can_lock());

  ASSERT_EQ(holder.request("fork-keep"), "FORKED");
  ASSERT_EQ(holder.request("close 0"), "OK");
  if (shared_by_fork) {
    EXPECT_FALSE(parent_can_lock()) << "the forked child's inherited fd no longer holds the lock";
  } else {
    EXPECT_TRUE(parent_can_lock()) << "the forked child inherited the posix lock";
  }
  ASSERT_EQ(holder.request("end-fork"), "OK");
  EXPECT_TRUE(parent_can_lock());
}

// Two threads with their own FileLock (their own open()) on one file: posix locks are per process,
// so the threads do not exclude each other; flock and ofd locks are per open file description,
// so they do.
TEST_P(ProcessLockTest, ThreadsWithSeparateOpensExcludeExceptWithPosix) {
  FileLock first(path_, options_for(backend()));
  FileLock second(path_, options_for(backend()));
  auto in_thread = [](FileLock& l) {
    auto result = std::async(std::launch::async, [&l] {
      return l.acquire(LockMode::exclusive, Clock::time_point::min());
    });
    EXPECT_EQ(result.wait_for(kWaitLimit), std::future_status::ready);
    return result.get();
  };
  ASSERT_FALSE(in_thread(first));
  // The lock is real: another process is excluded.
  Subprocess other = locker();
  EXPECT_EQ(other.request("acquire ex"), "BUSY");

  const std::error_code second_ec = in_thread(second);
  if (backend() == Backend::posix) {
    EXPECT_FALSE(second_ec) << "posix: a second thread of the holder process was refused: "
                            << second_ec.message();
  } else {
    EXPECT_EQ(second_ec, errc::busy) << "a second thread with its own open got the lock";
  }
  if (!second_ec) second.release();
  first.release();
  EXPECT_EQ(other.request("acquire ex"), "LOCKED");
}

TEST_P(ProcessLockTest, TimedAcquireFailsWithLockTimeoutAfterItsTimeout) {
  Subprocess holder = locker();
  ASSERT_EQ(holder.request("acquire ex"), "LOCKED");

  LockOptions o = options_for(backend());
  o.timeout = 300ms;
  FileLock waiter(path_, o);
  auto start = Clock::now();
  EXPECT_THROW(waiter.lock(), LockTimeout);
  auto waited = Clock::now() - start;
  EXPECT_GE(waited, 300ms);
  EXPECT_LT(waited, kWaitLimit);  // only catches a hang
  EXPECT_FALSE(waiter.owns_lock());

  start = Clock::now();
  EXPECT_FALSE(waiter.try_lock_for(200ms));
  waited = Clock::now() - start;
  EXPECT_GE(waited, 200ms);
  EXPECT_LT(waited, kWaitLimit);

  // fail_when_locked: AlreadyLocked at once, and not the LockTimeout subclass.
  LockOptions no_wait = options_for(backend());
  no_wait.fail_when_locked = true;
  FileLock impatient(path_, no_wait);
  try {
    impatient.lock();
    ADD_FAILURE() << "lock() succeeded while another process holds the lock";
  } catch (const LockTimeout&) {
    ADD_FAILURE() << "fail_when_locked raised LockTimeout";
  } catch (const AlreadyLocked& e) {
    EXPECT_EQ(e.code(), errc::busy);
  }
}

TEST_P(ProcessLockTest, BlockedWaiterIsGrantedTheLockWhenTheHolderReleases) {
  FileLock mine(path_, options_for(backend()));
  ASSERT_FALSE(mine.acquire(LockMode::exclusive, Clock::time_point::min()));
  Subprocess waiter = locker();
  // The waiter's own deadline (60 s) is longer than our read bound (20 s): if the release did not
  // wake it, the read below times out and the test fails instead of passing slowly.
  ASSERT_TRUE(waiter.send("wait ex 60000"));
  ASSERT_TRUE(wait_for_blocked_waiters(path_, 1)) << "the waiter never blocked in the kernel";
  EXPECT_FALSE(waiter.read_line(50ms).has_value()) << "the waiter got in while we hold the lock";
  ASSERT_FALSE(mine.release());
  EXPECT_EQ(waiter.read_line().value_or("<no reply>"), "LOCKED");
  EXPECT_FALSE(parent_can_lock());
}

std::string param_name(const ::testing::TestParamInfo<Backend>& info) {
  return backend_name(info.param);
}

INSTANTIATE_TEST_SUITE_P(Backends, ProcessLockTest,
                         ::testing::Values(Backend::flock, Backend::posix, Backend::ofd),
                         param_name);

}  // namespace
}  // namespace locksmith::mp
