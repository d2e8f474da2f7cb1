// Low-level lock(fd, flags, backend) / unlock / lock_until, the timed-wait mechanism and its
// polling fallback.
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "locksmith/lock.hpp"
#include "locksmith/lockable.hpp"
#include "locksmith/unique_fd.hpp"
#include "test_support.hpp"
#include "unit_helpers.hpp"

namespace locksmith::unit {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

UniqueFd open_rw(const fs::path& p) {
  UniqueFd fd(::open(p.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  EXPECT_TRUE(fd.valid()) << p;
  return fd;
}

static_assert(static_cast<unsigned>(LockFlags::shared) == 1);
static_assert(static_cast<unsigned>(LockFlags::exclusive) == 2);
static_assert(static_cast<unsigned>(LockFlags::non_blocking) == 4);
static_assert(static_cast<unsigned>(LockFlags::unblock) == 8);
static_assert(has(LockFlags::exclusive | LockFlags::non_blocking, LockFlags::non_blocking));
static_assert(!has(LockFlags::exclusive, LockFlags::shared));

// Runs `fn` on a thread with wake_signal() blocked, which forces the polling fallback.
template <class Fn>
void with_wake_signal_blocked(Fn fn) {
  std::thread t([&] {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, wake_signal());
    ASSERT_EQ(::pthread_sigmask(SIG_BLOCK, &set, nullptr), 0);
    fn();
  });
  t.join();
}

TEST(LockFlagsValidation, SharedAndExclusiveTogetherIsInvalid) {
  test::TempDir dir;
  auto fd = open_rw(dir / "f");
  EXPECT_EQ(lock(fd.get(), LockFlags::shared | LockFlags::exclusive), std::errc::invalid_argument);
  EXPECT_EQ(lock(fd.get(), LockFlags::shared | LockFlags::exclusive | LockFlags::non_blocking),
            std::errc::invalid_argument);
}

TEST(LockFlagsValidation, NonBlockingOrNothingAloneIsInvalid) {
  test::TempDir dir;
  auto fd = open_rw(dir / "f");
  EXPECT_EQ(lock(fd.get(), LockFlags::non_blocking), std::errc::invalid_argument);
  EXPECT_EQ(lock(fd.get(), LockFlags::none), std::errc::invalid_argument);
}

class BackendTest : public ::testing::TestWithParam<Backend> {
 protected:
  test::TempDir dir_;
};

INSTANTIATE_TEST_SUITE_P(Backends, BackendTest,
                         ::testing::Values(Backend::flock, Backend::posix, Backend::ofd),
                         [](const auto& param_info) {
                           return std::string(to_string(param_info.param));
                         });

// A forked process holding `path` in `mode` with backend `b` until told 'R'.
std::unique_ptr<Subprocess> hold_in_child(const fs::path& path, LockMode mode, Backend b) {
  auto child = std::make_unique<Subprocess>(Subprocess::fork([=](Channel& self) {
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
    if (lock_until(fd.get(), mode, b, Clock::time_point::min())) return 1;
    self.send('L');
    (void)self.receive();
    unlock(fd.get(), b);
    self.send('D');
    return 0;
  }));
  EXPECT_EQ(child->receive(), 'L');
  return child;
}

TEST_P(BackendTest, UnblockAloneUnlocks) {
  auto holder = open_rw(dir_ / "f");
  ASSERT_FALSE(lock(holder.get(), LockFlags::exclusive | LockFlags::non_blocking, GetParam()));
  ASSERT_FALSE(lock(holder.get(), LockFlags::unblock, GetParam()));
  // Now another process can take it.
  auto other = hold_in_child(dir_ / "f", LockMode::exclusive, GetParam());
  other->send('R');
  EXPECT_EQ(other->receive(), 'D');
}

TEST_P(BackendTest, BusyIsErrcBusyAndSharedIsCompatible) {
  const fs::path path = dir_ / "f";
  {
    auto holder = hold_in_child(path, LockMode::exclusive, GetParam());
    auto fd = open_rw(path);
    EXPECT_EQ(lock(fd.get(), LockFlags::exclusive | LockFlags::non_blocking, GetParam()),
              errc::busy);
    EXPECT_EQ(lock(fd.get(), LockFlags::shared | LockFlags::non_blocking, GetParam()), errc::busy);
    // A deadline already passed is a try, and busy is reported as busy, not timeout.
    EXPECT_EQ(lock_until(fd.get(), LockMode::exclusive, GetParam(), Clock::now() - 1s), errc::busy);
    holder->send('R');
    EXPECT_EQ(holder->receive(), 'D');
  }
  {
    auto holder = hold_in_child(path, LockMode::shared, GetParam());
    auto fd = open_rw(path);
    EXPECT_FALSE(lock(fd.get(), LockFlags::shared | LockFlags::non_blocking, GetParam()));
    auto fd2 = open_rw(path);
    EXPECT_FALSE(lock(fd2.get(), LockFlags::shared | LockFlags::non_blocking, GetParam()));
    EXPECT_FALSE(unlock(fd.get(), GetParam()));
    EXPECT_FALSE(unlock(fd2.get(), GetParam()));
    EXPECT_EQ(lock(fd.get(), LockFlags::exclusive | LockFlags::non_blocking, GetParam()),
              errc::busy);
    holder->send('R');
    EXPECT_EQ(holder->receive(), 'D');
    EXPECT_FALSE(lock(fd.get(), LockFlags::exclusive | LockFlags::non_blocking, GetParam()));
  }
}

TEST_P(BackendTest, SeparateOpensInOneProcess) {
  const fs::path path = dir_ / "f";
  auto a = open_rw(path);
  auto b = open_rw(path);
  ASSERT_FALSE(lock(a.get(), LockFlags::exclusive | LockFlags::non_blocking, GetParam()));
  const auto second = lock(b.get(), LockFlags::exclusive | LockFlags::non_blocking, GetParam());
  if (GetParam() == Backend::posix) {
    // fcntl locks are owned by the process: the second open does not conflict ...
    EXPECT_FALSE(second);
    // ... and closing ANY fd of the file drops the process's lock (the classic pitfall).
    b.reset();
    auto other = hold_in_child(path, LockMode::exclusive, GetParam());
    other->send('R');
    EXPECT_EQ(other->receive(), 'D');
  } else {
    // flock and OFD locks are owned by the open file description: separate opens conflict,
    // shared + shared is compatible, shared vs exclusive conflicts.
    EXPECT_EQ(second, errc::busy);
    ASSERT_FALSE(unlock(a.get(), GetParam()));
    ASSERT_FALSE(lock(a.get(), LockFlags::shared | LockFlags::non_blocking, GetParam()));
    EXPECT_FALSE(lock(b.get(), LockFlags::shared | LockFlags::non_blocking, GetParam()));
    auto c = open_rw(path);
    EXPECT_EQ(lock(c.get(), LockFlags::exclusive | LockFlags::non_blocking, GetParam()),
              errc::busy);
  }
}

TEST_P(BackendTest, TimedWaiterIsGrantedTheLockAfterRelease) {
  const fs::path path = dir_ / "f";
  auto holder = hold_in_child(path, LockMode::exclusive, GetParam());
  auto fd = open_rw(path);
  bool seen = false;
  std::thread releaser([&] {
    seen = wait_for_blocked_waiters(dir_.path(), 1);
    holder->send('R');
  });
  const auto ec = lock_until(fd.get(), LockMode::exclusive, GetParam(), Clock::now() + kWaitLimit);
  releaser.join();
  EXPECT_TRUE(seen) << "the waiter never blocked in the kernel";
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_EQ(holder->receive(), 'D');
}

TEST_P(BackendTest, UntimedWaiterIsGrantedTheLockAfterRelease) {
  const fs::path path = dir_ / "f";
  auto holder = hold_in_child(path, LockMode::exclusive, GetParam());
  auto fd = open_rw(path);
  bool seen = false;
  std::thread releaser([&] {
    seen = wait_for_blocked_waiters(dir_.path(), 1);
    holder->send('R');  // also sent when the wait was not seen, so lock() below returns
  });
  const auto ec = lock(fd.get(), LockFlags::exclusive, GetParam());
  releaser.join();
  EXPECT_TRUE(seen);
  EXPECT_FALSE(ec) << ec.message();
}

TEST_P(BackendTest, TimedWaiterTimesOutAfterItsDeadline) {
  const fs::path path = dir_ / "f";
  auto holder = hold_in_child(path, LockMode::exclusive, GetParam());
  auto fd = open_rw(path);
  const auto start = Clock::now();
  const auto deadline = start + 100ms;
  EXPECT_EQ(lock_until(fd.get(), LockMode::exclusive, GetParam(), deadline), errc::timeout);
  EXPECT_GE(Clock::now(), deadline);
  EXPECT_LT(Clock::now() - start, kWaitLimit);
  // The lock is still the holder's: nothing was taken by the timed-out waiter.
  EXPECT_EQ(lock(fd.get(), LockFlags::exclusive | LockFlags::non_blocking, GetParam()), errc::busy);
}

TEST_P(BackendTest, PollingFallbackWhenTheWakeSignalIsBlocked) {
  const fs::path path = dir_ / "f";
  auto holder = hold_in_child(path, LockMode::exclusive, GetParam());
  auto fd = open_rw(path);
  with_wake_signal_blocked([&] {
    const auto deadline = Clock::now() + 100ms;
    EXPECT_EQ(lock_until(fd.get(), LockMode::exclusive, GetParam(), deadline), errc::timeout);
    EXPECT_GE(Clock::now(), deadline);
  });

  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  std::error_code ec = make_error_code(errc::busy);
  std::thread waiter([&] {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, wake_signal());
    ::pthread_sigmask(SIG_BLOCK, &set, nullptr);
    const char c = 'w';
    EXPECT_EQ(::write(ready[1], &c, 1), 1);
    ec = lock_until(fd.get(), LockMode::exclusive, GetParam(), Clock::now() + kWaitLimit);
  });
  char c = 0;
  EXPECT_EQ(::read(ready[0], &c, 1), 1);
  holder->send('R');
  waiter.join();
  EXPECT_FALSE(ec) << ec.message();
  ::close(ready[0]);
  ::close(ready[1]);
}

TEST_P(BackendTest, BadDescriptorIsAnOsError) {
  EXPECT_EQ(lock(-1, LockFlags::exclusive | LockFlags::non_blocking, GetParam()),
            std::errc::bad_file_descriptor);
  EXPECT_EQ(lock_until(-1, LockMode::shared, GetParam(), Clock::now() + 1s),
            std::errc::bad_file_descriptor);
  EXPECT_EQ(unlock(-1, GetParam()), std::errc::bad_file_descriptor);
}

TEST(LockFd, FcntlExclusiveNeedsAWritableDescriptor) {
  test::TempDir dir;
  { auto create = open_rw(dir / "f"); }
  UniqueFd ro(::open((dir / "f").c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(ro.valid());
  EXPECT_EQ(lock(ro.get(), LockFlags::exclusive | LockFlags::non_blocking, Backend::posix),
            std::errc::bad_file_descriptor);
  EXPECT_EQ(lock(ro.get(), LockFlags::exclusive | LockFlags::non_blocking, Backend::ofd),
            std::errc::bad_file_descriptor);
  EXPECT_FALSE(lock(ro.get(), LockFlags::shared | LockFlags::non_blocking, Backend::posix));
  // flock does not care how the file was opened.
  EXPECT_FALSE(lock(ro.get(), LockFlags::exclusive | LockFlags::non_blocking, Backend::flock));
}

TEST(LockFd, UnsupportedBackends) {
  test::TempDir dir;
  auto fd = open_rw(dir / "f");
  for (Backend b : {Backend::windows, Backend::link, Backend::auto_}) {
    EXPECT_EQ(lock(fd.get(), LockFlags::exclusive, b), errc::unsupported) << to_string(b);
    EXPECT_EQ(lock_until(fd.get(), LockMode::shared, b, Clock::now()), errc::unsupported);
    EXPECT_EQ(unlock(fd.get(), b), errc::unsupported);
  }
}

TEST(LockFd, BackendAndModeNames) {
  EXPECT_EQ(to_string(Backend::flock), "flock");
  EXPECT_EQ(to_string(Backend::posix), "posix");
  EXPECT_EQ(to_string(Backend::ofd), "ofd");
  EXPECT_EQ(to_string(Backend::windows), "windows");
  EXPECT_EQ(to_string(Backend::link), "link");
  EXPECT_EQ(to_string(Backend::auto_), "auto");
  EXPECT_EQ(to_string(static_cast<Backend>(42)), "unknown");
  EXPECT_EQ(to_string(LockMode::exclusive), "exclusive");
  EXPECT_EQ(to_string(LockMode::shared), "shared");
  EXPECT_EQ(kDefaultBackend, Backend::flock);
}

TEST(LockFd, DeadlineHelpers) {
  EXPECT_EQ(Lockable::deadline_after(0ms), Clock::time_point::min());
  EXPECT_EQ(Lockable::deadline_after(-5s), Clock::time_point::min());
  EXPECT_EQ(Lockable::deadline_after(std::chrono::hours::max()), kForever);
  const auto before = Clock::now();
  const auto d = Lockable::deadline_after(1s);
  EXPECT_GE(d, before + 1s);
  EXPECT_LE(d, Clock::now() + 1s);
  const auto t = Clock::now() + 3s;
  EXPECT_EQ(Lockable::to_deadline(t), t);
  const auto sys = Lockable::to_deadline(std::chrono::system_clock::now() + 10s);
  EXPECT_GT(sys, Clock::now() + 9s);
  EXPECT_LE(sys, Clock::now() + 10s);
}

TEST(WakeSignal, IsARealTimeSignalWithOurHandler) {
  const int signo = wake_signal();
  ASSERT_NE(signo, 0) << "timed waits would poll on Linux";
  EXPECT_EQ(signo, SIGRTMAX - 3);
  EXPECT_EQ(wake_signal(), signo);  // chosen once
  struct sigaction current {};
  ASSERT_EQ(::sigaction(signo, nullptr, &current), 0);
  EXPECT_NE(current.sa_handler, SIG_DFL);
  EXPECT_NE(current.sa_handler, SIG_IGN);
  EXPECT_EQ(current.sa_flags & SA_RESTART, 0) << "the blocking call must return EINTR";
}

// wake_signal() is chosen once per process, so its environment variants run in a fresh copy of
// this binary (unit_main.cpp "wake-signal" mode), which also checks that timed waits still time
// out no earlier than the deadline and that a waiter is granted the lock after the release.
TEST(WakeSignal, DefaultInAFreshProcess) {
  EXPECT_EQ(run_self("wake-signal", {"LOCKSMITH_UNIT_EXPECT_SIGNAL=rtmax-3"}), 0);
}

TEST(WakeSignal, ZeroDisablesTheSignalAndWaitsPoll) {
  EXPECT_EQ(run_self("wake-signal", {"LOCKSMITH_WAKE_SIGNAL=0", "LOCKSMITH_UNIT_EXPECT_SIGNAL=0"}),
            0);
}

TEST(WakeSignal, ChosenSignalNumber) {
  EXPECT_EQ(
      run_self("wake-signal", {"LOCKSMITH_WAKE_SIGNAL=" + std::to_string(SIGRTMIN + 2),
                               "LOCKSMITH_UNIT_EXPECT_SIGNAL=" + std::to_string(SIGRTMIN + 2)}),
      0);
}

TEST(WakeSignal, UnusableValuesFallBackToPolling) {
  for (const std::string value : {"abc", "12x", "-3", "999", "9" /* SIGKILL: cannot be caught */}) {
    EXPECT_EQ(run_self("wake-signal",
                       {"LOCKSMITH_WAKE_SIGNAL=" + value, "LOCKSMITH_UNIT_EXPECT_SIGNAL=0"}),
              0)
        << "LOCKSMITH_WAKE_SIGNAL=" << value;
  }
}

TEST(WakeSignal, SignalAlreadyUsedByTheApplicationIsLeftAlone) {
  // An ignored disposition survives exec: locksmith must not take the signal over.
  EXPECT_EQ(run_self("wake-signal", {"LOCKSMITH_UNIT_EXPECT_SIGNAL=0"}, SIGRTMAX - 3), 0);
}

}  // namespace
}  // namespace locksmith::unit
