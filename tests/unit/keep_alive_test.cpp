// KeepAlive: an expiring lock stays held while kept alive, and its loss is told at once, by every
// channel (lost(), reason(), stop_token, notify handle, callback). Scripted locks show that the
// keeper declares loss exactly when the rule says (a loss reported, a bound passed, a push), and
// never for a lock that cannot be lost.
#include "locksmith/keep_alive.hpp"

#include <gtest/gtest.h>
#include <poll.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <mutex>
#include <thread>

#include "locksmith/file_lock.hpp"
#include "locksmith/link_lock.hpp"
#include "test_support.hpp"
#include "wait_limit.hpp"

namespace {

using namespace std::chrono_literals;
using locksmith::Clock;
using locksmith::errc;
using locksmith::KeepAlive;
using locksmith::KeepAliveOptions;
using locksmith::LinkLock;
using locksmith::LinkLockOptions;
using locksmith::LockMode;
using locksmith::test::TempDir;

// Every wait here ends by the one bound of the test suites.
using locksmith::test::kWaitLimit;

// Whether `fd` becomes readable within `within`.
bool readable_within(int fd, Clock::duration within) {
  struct pollfd p {};
  p.fd = fd;
  p.events = POLLIN;
  const int ms =
      static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(within).count());
  return ::poll(&p, 1, ms) == 1 && (p.revents & POLLIN) != 0;
}

template <class Pred>
bool eventually(Pred pred) {
  const auto until = Clock::now() + kWaitLimit;
  while (!pred()) {
    if (Clock::now() > until) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

// A lock whose renewals answer what the test says.
class ScriptedLock : public locksmith::Lockable {
 public:
  std::error_code acquire(LockMode, Clock::time_point) noexcept override { return {}; }
  std::error_code release() noexcept override { return {}; }
  locksmith::LockInfo describe() const override {
    locksmith::LockInfo info;
    info.kind = info.mechanism = "scripted";
    info.target = "t";
    return info;
  }
  Clock::duration keep_alive_interval() const noexcept override { return interval; }
  std::error_code keep_alive() noexcept override {
    calls.fetch_add(1);
    const std::lock_guard lk(mu);
    if (!answer) valid = Clock::now() + validity;
    return answer;
  }
  Clock::time_point valid_until() const noexcept override {
    const std::lock_guard lk(mu);
    return valid;
  }
  bool on_loss(const std::function<void()>& n) noexcept override {
    const std::lock_guard lk(mu);
    notice = n;
    return pushes;
  }
  void set_answer(std::error_code ec) {
    const std::lock_guard lk(mu);
    answer = ec;
  }
  void push() {
    std::function<void()> n;
    {
      const std::lock_guard lk(mu);
      n = notice;
    }
    if (n) n();
  }

  Clock::duration interval = 20ms;
  Clock::duration validity = 1h;
  bool pushes = false;
  std::atomic<int> calls{0};
  mutable std::mutex mu;
  std::error_code answer;
  Clock::time_point valid = Clock::now() + 1h;
  std::function<void()> notice;
};

TEST(KeepAlive, NothingToDoForALockThatCannotBeLost) {
  TempDir dir;
  locksmith::FileLock lock(dir / "f.lock");
  lock.lock();
  KeepAlive keeper(lock);
  EXPECT_FALSE(keeper.active());
  EXPECT_EQ(keeper.notify_handle(), locksmith::UniqueFd::kInvalid);
  EXPECT_FALSE(keeper.lost());
  keeper.stop();
  lock.unlock();
}

// Without the keeper a waiter breaks a 1 s link lock after its lifetime (the control: the
// test would pass for a keeper that does nothing otherwise); with it, the lock outlives many
// lifetimes.
TEST(KeepAlive, KeepsALinkLockPastItsLifetime) {
  TempDir dir;
  LinkLockOptions o;
  o.lifetime = 1s;
  o.clock_slop = 0ms;
  LinkLock holder(dir / "l", o);
  LinkLock other(dir / "l", o);
  ASSERT_TRUE(holder.try_lock());
  ASSERT_TRUE(other.try_lock_for(kWaitLimit));  // broken once the lifetime passed: the control
  ASSERT_EQ(holder.keep_alive(), make_error_code(errc::lock_lost));
  other.unlock();
  (void)holder.release();

  ASSERT_TRUE(holder.try_lock());
  KeepAlive keeper(holder);
  EXPECT_TRUE(keeper.active());
  EXPECT_EQ(keeper.interval(), std::chrono::duration_cast<Clock::duration>(1s) / 3);
  ASSERT_TRUE(eventually([&] { return keeper.renewals() >= 6; }));  // >= 2 lifetimes
  EXPECT_FALSE(other.try_lock());
  EXPECT_FALSE(keeper.lost());
  keeper.stop();
  EXPECT_FALSE(holder.release());
}

TEST(KeepAlive, ABrokenLinkLockIsToldOnEveryChannel) {
  TempDir dir;
  LinkLockOptions o;
  o.lifetime = 600ms;
  LinkLock holder(dir / "l", o);
  ASSERT_TRUE(holder.try_lock());
  std::atomic<int> told{0};
  std::error_code told_why;
  std::mutex mu;
  KeepAliveOptions ko;
  ko.on_lost = [&](std::error_code ec) {
    const std::lock_guard lk(mu);
    told_why = ec;
    told.fetch_add(1);
  };
  KeepAlive keeper(holder, ko);
  const auto token = keeper.stop_token();
  EXPECT_FALSE(token.stop_requested());
  std::filesystem::remove(dir / "l");  // someone breaks it
  const auto removed = Clock::now();
  ASSERT_TRUE(readable_within(keeper.notify_handle(), kWaitLimit));
  EXPECT_TRUE(keeper.lost());
  EXPECT_EQ(keeper.reason(), make_error_code(errc::lock_lost));
  EXPECT_TRUE(token.stop_requested());
  EXPECT_GE(keeper.lost_at(), removed);
  ASSERT_TRUE(eventually([&] { return told.load() == 1; }));
  {
    const std::lock_guard lk(mu);
    EXPECT_EQ(told_why, make_error_code(errc::lock_lost));
  }
  keeper.stop();
  EXPECT_EQ(told.load(), 1);
  EXPECT_EQ(holder.release(), make_error_code(errc::lock_lost));
}

// A renewal that cannot answer is retried, and loss is declared only once the lock's own bound
// has passed, with the error that kept it from renewing.
TEST(KeepAlive, UnansweredRenewalsAreALossOnlyAfterTheBound) {
  ScriptedLock lock;
  lock.valid = Clock::now() + 300ms;
  const auto bound = lock.valid;
  lock.set_answer(std::make_error_code(std::errc::io_error));
  KeepAlive keeper(lock);
  ASSERT_TRUE(readable_within(keeper.notify_handle(), kWaitLimit));
  EXPECT_GE(keeper.lost_at(), bound);
  EXPECT_EQ(keeper.reason(), std::make_error_code(std::errc::io_error));
  EXPECT_GT(lock.calls.load(), 2);  // retried before giving up
}

TEST(KeepAlive, ARenewalThatAnswersAgainKeepsTheLock) {
  ScriptedLock lock;
  lock.validity = 200ms;
  lock.valid = Clock::now() + 200ms;
  lock.set_answer(std::make_error_code(std::errc::io_error));
  KeepAlive keeper(lock);
  ASSERT_TRUE(eventually([&] { return lock.calls.load() >= 2; }));
  lock.set_answer({});
  const int before = lock.calls.load();
  ASSERT_TRUE(eventually([&] { return lock.calls.load() >= before + 20; }));
  EXPECT_FALSE(keeper.lost());
}

TEST(KeepAlive, AReportedLossIsDeclaredAtOnce) {
  ScriptedLock lock;
  lock.set_answer(make_error_code(errc::lock_lost));
  KeepAlive keeper(lock);
  ASSERT_TRUE(readable_within(keeper.notify_handle(), kWaitLimit));
  EXPECT_EQ(lock.calls.load(), 1);
  EXPECT_EQ(keeper.reason(), make_error_code(errc::lock_lost));
}

// The primitive's own thread pushes the loss: told without waiting for the (hour-long) interval.
TEST(KeepAlive, APushedLossWakesTheKeeperAtOnce) {
  ScriptedLock lock;
  lock.interval = 1h;
  lock.pushes = true;
  KeepAlive keeper(lock);
  EXPECT_FALSE(readable_within(keeper.notify_handle(), 50ms));
  lock.set_answer(make_error_code(errc::lock_lost));
  std::thread pusher([&] { lock.push(); });
  ASSERT_TRUE(readable_within(keeper.notify_handle(), kWaitLimit));
  pusher.join();
  EXPECT_TRUE(keeper.lost());
  keeper.stop();
  const std::lock_guard lk(lock.mu);
  EXPECT_FALSE(static_cast<bool>(lock.notice));  // the notice is removed by stop()
}

TEST(KeepAlive, StopEndsRenewalsWithoutReleasing) {
  ScriptedLock lock;
  KeepAlive keeper(lock);
  ASSERT_TRUE(eventually([&] { return lock.calls.load() >= 2; }));
  keeper.stop();
  const int after = lock.calls.load();
  std::this_thread::sleep_for(100ms);  // a window in which a running keeper would renew 5 times
  EXPECT_EQ(lock.calls.load(), after);
  EXPECT_FALSE(keeper.lost());
}

}  // namespace
