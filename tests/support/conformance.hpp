// The conformance suite: one set of typed tests that every lock type must pass through the
// uniform Lockable interface (GoogleTest type-parameterised tests, as Abseil's waiter_test.cc runs
// every waiter backend). Contention comes from a forked holder process, so the same tests hold
// for process-scoped locks (fcntl) and for locks owned by an open file description, a claim file,
// a directory or a Redis key.
//
// A binary instantiates it for its own lock types (INSTANTIATE_TYPED_TEST_SUITE_P with a type
// list): tests/unit for the file, semaphore, spec, link and lockfile families, tests/redis for the
// Redis locks against a real redis-server. Include this header in one source file per binary: it
// defines and registers the tests.
//
// A lock type is a traits struct:
//   make(dir, name, policy)  a new, unlocked object on (dir, name) waiting as `policy` says
//   kind(), target(dir, name) what describe() must say
//   kCapacity                holders at once (1, or a semaphore's maximum)
//   kProcessScoped           a second object in the same process does not conflict (fcntl locks)
//   kShared                  supports_shared()
// and optionally, for what a family does not have or needs:
//   kKernelWaiters (true)    a waiter shows in /proc/locks (flock, fcntl, OFD, semaphore slots);
//                            other families are released once the waiter has seen the lock taken
//   shared_refusal()         the error of lock_shared() when !kShared (default invalid_argument)
//   kReentrant (false)       the holder may acquire again and holds until as many releases
//                            (RLock); the nested-hold test is skipped for the others
//   set_up(), tear_down()    per test, e.g. start a redis-server
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <system_error>
#include <thread>
#include <type_traits>
#include <vector>

#include "locksmith/error.hpp"
#include "locksmith/lockable.hpp"
#include "proc_locks.hpp"
#include "subprocess.hpp"
#include "test_support.hpp"

// The lock types live in a short named namespace because ctest test names show them
// ("Conformance.DestructionReleases<conformance::FileLockPosix>").
namespace conformance {

using namespace locksmith;  // NOLINT(google-build-using-namespace)
using test::Channel;
using test::kWaitLimit;
using test::Subprocess;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

// How lock() waits, in each type's own options.
struct Policy {
  std::optional<Clock::duration> timeout;
  bool fail_when_locked = false;
};

template <class T>
constexpr bool kernel_waiters() {
  if constexpr (requires { T::kKernelWaiters; }) {
    return T::kKernelWaiters;
  } else {
    return true;
  }
}

template <class T>
constexpr bool reentrant() {
  if constexpr (requires { T::kReentrant; }) {
    return T::kReentrant;
  } else {
    return false;
  }
}

template <class T>
std::error_code shared_refusal() {
  if constexpr (requires { T::shared_refusal(); }) {
    return T::shared_refusal();
  } else {
    return std::make_error_code(std::errc::invalid_argument);
  }
}

template <class T>
class Conformance : public ::testing::Test {
 protected:
  std::unique_ptr<Lockable> make(const Policy& p = {}, const std::string& name = "lock") {
    return T::make(dir_.path(), name, p);
  }
  std::string target(const std::string& name = "lock") { return T::target(dir_.path(), name); }

  // Holds the lock to capacity in a forked child until told to release ('R').
  std::unique_ptr<Subprocess> hold_elsewhere(const std::string& name = "lock") {
    const fs::path dir = dir_.path();
    auto child = std::make_unique<Subprocess>(Subprocess::fork([dir, name](Channel& self) {
      std::vector<std::unique_ptr<Lockable>> held;
      for (unsigned i = 0; i < T::kCapacity; ++i) {
        held.push_back(T::make(dir, name));
        if (!held.back()->try_lock()) {
          self.send('F');
          return 1;
        }
      }
      self.send('L');
      (void)self.receive();  // 'R', or end of stream when the test is over
      held.clear();
      self.send('D');
      return 0;
    }));
    EXPECT_EQ(child->receive(), 'L') << "the holder process could not take the lock";
    return child;
  }

  static void release_elsewhere(Subprocess& child) {
    child.send('R');
    EXPECT_EQ(child.receive(), 'D');
  }

  // Whether a fresh object in another process can take the lock now. The asking goes to a
  // prober forked in SetUp, before the test started any thread: a child forked later from a
  // test holding a lock with a thread (pub/sub) could not start threads of its own under
  // ThreadSanitizer, nor portably anywhere.
  bool other_process_can_lock() {
    EXPECT_TRUE(prober_.send('P')) << "the prober is gone";
    const auto answer = prober_.receive();
    EXPECT_TRUE(answer == 'Y' || answer == 'N')
        << "probe failed: " << (answer ? std::string(1, *answer) : std::string("no answer"));
    return answer == 'Y';
  }
  // kCapacity held objects in this process.
  std::vector<std::unique_ptr<Lockable>> fill() {
    std::vector<std::unique_ptr<Lockable>> held;
    for (unsigned i = 0; i < T::kCapacity; ++i) {
      held.push_back(make());
      EXPECT_TRUE(held.back()->try_lock()) << "holder " << i;
    }
    return held;
  }

  void SetUp() override {
    if constexpr (requires { T::set_up(); }) T::set_up();
    const fs::path dir = dir_.path();
    // Each 'P' tries a fresh object and answers 'Y' (got it, released again), 'N' (busy) or
    // 'E' (an error); end of stream ends it.
    prober_ = Subprocess::fork([dir](Channel& self) {
      while (self.receive(std::chrono::hours(1)) == 'P') {
        char answer = 'E';
        try {
          auto l = T::make(dir, "lock");
          answer = l->try_lock() ? 'Y' : 'N';
        } catch (...) {
        }
        if (!self.send(answer)) return 1;
      }
      return 0;
    });
  }
  void TearDown() override {
    if constexpr (requires { T::tear_down(); }) T::tear_down();
  }

  test::TempDir dir_;
  Subprocess prober_;
};

TYPED_TEST_SUITE_P(Conformance);

TYPED_TEST_P(Conformance, AcquireReleaseRoundTrip) {
  auto l = this->make();
  for (int round = 0; round < 3; ++round) {
    l->lock();
    EXPECT_TRUE(l->describe().held);
    l->unlock();
    EXPECT_FALSE(l->describe().held);
    ASSERT_TRUE(l->try_lock());
    EXPECT_TRUE(l->describe().held);
    if constexpr (TypeParam::kCapacity == 1) {
      EXPECT_FALSE(this->other_process_can_lock());
    }
    EXPECT_FALSE(l->release());
    EXPECT_FALSE(l->describe().held);
  }
  EXPECT_TRUE(this->other_process_can_lock());
}

TYPED_TEST_P(Conformance, DescribeReflectsKindTargetAndState) {
  auto l = this->make();
  LockInfo before = l->describe();
  EXPECT_EQ(before.kind, TypeParam::kind());
  EXPECT_EQ(before.target, this->target());
  EXPECT_FALSE(before.held);
  EXPECT_FALSE(before.mode.has_value());
  EXPECT_FALSE(before.slot.has_value());
  EXPECT_EQ(l->supports_shared(), TypeParam::kShared);

  l->lock();
  LockInfo during = l->describe();
  EXPECT_EQ(during.kind, TypeParam::kind());
  EXPECT_EQ(during.target, this->target());
  EXPECT_TRUE(during.held);
  EXPECT_EQ(during.mode, LockMode::exclusive);
  if (TypeParam::kind() == "sem") {
    ASSERT_TRUE(during.slot.has_value());
    EXPECT_EQ(*during.slot, this->target() + ".00.lock");
  }
  if (TypeParam::kind() == "pidfile") {
    EXPECT_EQ(during.token, std::to_string(::getpid()));
  }
  l->unlock();
  EXPECT_FALSE(l->describe().held);
  EXPECT_FALSE(l->describe().mode.has_value());
}

TYPED_TEST_P(Conformance, ReleaseWhenNotHeldIsNotLocked) {
  auto l = this->make();
  EXPECT_EQ(l->release(), errc::not_locked);
  try {
    l->unlock();
    ADD_FAILURE() << "unlock() of an unlocked lock did not throw";
  } catch (const NotLocked& e) {
    EXPECT_EQ(e.code(), errc::not_locked);
    EXPECT_NE(std::string(e.what()).find("cannot unlock '" + this->target() + "'"),
              std::string::npos)
        << e.what();
  }
  l->lock();
  l->unlock();
  EXPECT_EQ(l->release(), errc::not_locked);
  EXPECT_THROW(l->unlock(), NotLocked);
}

TYPED_TEST_P(Conformance, WorksWithStdUniqueLock) {
  auto l = this->make();
  {
    std::unique_lock<Lockable> guard(*l);
    EXPECT_TRUE(guard.owns_lock());
    EXPECT_TRUE(l->describe().held);
  }
  EXPECT_FALSE(l->describe().held);
  {
    std::unique_lock<Lockable> guard(*l, std::try_to_lock);
    EXPECT_TRUE(guard.owns_lock());
  }
  {
    std::unique_lock<Lockable> guard(*l, 10ms);
    EXPECT_TRUE(guard.owns_lock());
    guard.unlock();
    EXPECT_FALSE(l->describe().held);
    EXPECT_TRUE(guard.try_lock_until(std::chrono::system_clock::now() + 10ms));
  }
  EXPECT_FALSE(l->describe().held);
  EXPECT_TRUE(this->other_process_can_lock());
}

TYPED_TEST_P(Conformance, WorksWithStdScopedLock) {
  auto a = this->make({}, "a");
  auto b = this->make({}, "b");
  {
    std::scoped_lock guard(*a, *b);
    EXPECT_TRUE(a->describe().held);
    EXPECT_TRUE(b->describe().held);
  }
  EXPECT_FALSE(a->describe().held);
  EXPECT_FALSE(b->describe().held);
}

TYPED_TEST_P(Conformance, SharedLockWhereSupported) {
  auto first = this->make();
  auto second = this->make();
  if constexpr (TypeParam::kShared) {
    {
      std::shared_lock<Lockable> one(*first);
      std::shared_lock<Lockable> two(*second, std::try_to_lock);
      ASSERT_TRUE(one.owns_lock());
      ASSERT_TRUE(two.owns_lock()) << "a second shared holder was refused";
      EXPECT_EQ(first->describe().mode, LockMode::shared);
      EXPECT_EQ(second->describe().mode, LockMode::shared);
      EXPECT_FALSE(this->other_process_can_lock()) << "exclusive granted beside shared holders";
      one.unlock();
      if constexpr (TypeParam::kProcessScoped) {
        // fcntl locks belong to the process: unlocking through either object drops its lock.
        EXPECT_TRUE(this->other_process_can_lock());
      } else {
        EXPECT_FALSE(this->other_process_can_lock())
            << "exclusive granted while one shared holder remains";
      }
    }
    EXPECT_TRUE(first->try_lock_shared_until(std::chrono::system_clock::now() + 10ms));
    first->unlock_shared();
    EXPECT_TRUE(this->other_process_can_lock());
  } else {
    try {
      first->lock_shared();
      ADD_FAILURE() << "lock_shared() on a lock without shared mode did not throw";
    } catch (const LockError& e) {
      EXPECT_EQ(e.code(), shared_refusal<TypeParam>());
    }
    EXPECT_THROW((void)first->try_lock_shared(), LockError);
    EXPECT_FALSE(first->describe().held);
  }
}

TYPED_TEST_P(Conformance, NestedHoldWhereReentrant) {
  if constexpr (!reentrant<TypeParam>()) {
    GTEST_SKIP() << "not re-entrant: the holder's second acquire is not a nested hold";
  } else {
    auto l = this->make();
    l->lock();
    ASSERT_TRUE(l->try_lock()) << "the holder's nested try_lock was refused";
    ASSERT_TRUE(l->try_lock_for(10ms)) << "the holder's nested timed lock was refused";
    l->unlock();
    l->unlock();
    EXPECT_TRUE(l->describe().held) << "the outer hold ended with an inner one";
    EXPECT_FALSE(this->other_process_can_lock());
    l->unlock();
    EXPECT_FALSE(l->describe().held);
    EXPECT_TRUE(this->other_process_can_lock());
    EXPECT_EQ(l->release(), errc::not_locked) << "released more often than acquired";
  }
}

TYPED_TEST_P(Conformance, TimedTryLockWhenFree) {
  auto l = this->make();
  EXPECT_TRUE(l->try_lock_for(10ms));
  l->unlock();
  EXPECT_TRUE(l->try_lock_for(0ms));  // a zero wait is a try
  l->unlock();
  EXPECT_TRUE(l->try_lock_until(Clock::now() + 10ms));
  l->unlock();
  EXPECT_TRUE(l->try_lock_until(Clock::now() - 1s));  // a past deadline is a try
  l->unlock();
  EXPECT_TRUE(l->try_lock_until(std::chrono::system_clock::now() + 10ms));
  l->unlock();
  EXPECT_TRUE(l->try_lock_for(std::chrono::hours::max()));  // "forever" does not overflow
  l->unlock();
}

TYPED_TEST_P(Conformance, BusyIsFalseNotAnException) {
  auto holder = this->hold_elsewhere();
  auto l = this->make();
  bool got = true;
  EXPECT_NO_THROW(got = l->try_lock());
  EXPECT_FALSE(got);
  EXPECT_FALSE(l->describe().held);
  EXPECT_EQ(l->acquire(LockMode::exclusive, Clock::time_point::min()), errc::busy);
  EXPECT_TRUE(is_contended(l->acquire(LockMode::exclusive, Clock::time_point::min())));
  EXPECT_FALSE(l->try_lock_until(Clock::now() - 1s));
  EXPECT_EQ(l->release(), errc::not_locked);
  this->release_elsewhere(*holder);
  EXPECT_TRUE(l->try_lock());
}

TYPED_TEST_P(Conformance, TimedTryLockWaitsAtLeastItsTimeout) {
  auto holder = this->hold_elsewhere();
  auto l = this->make();

  auto start = Clock::now();
  EXPECT_FALSE(l->try_lock_for(50ms));
  EXPECT_GE(Clock::now() - start, 50ms);

  start = Clock::now();
  const auto deadline = start + 50ms;
  EXPECT_FALSE(l->try_lock_until(deadline));
  EXPECT_GE(Clock::now(), deadline);

  // A system_clock deadline is converted to the steady clock on entry.
  start = Clock::now();
  EXPECT_FALSE(l->try_lock_until(std::chrono::system_clock::now() + 50ms));
  EXPECT_GE(Clock::now() - start, 45ms);

  EXPECT_EQ(l->acquire(LockMode::exclusive, Clock::now() + 20ms), errc::timeout);
  EXPECT_FALSE(l->describe().held);
  this->release_elsewhere(*holder);
}

TYPED_TEST_P(Conformance, FailWhenLockedThrowsAlreadyLocked) {
  auto holder = this->hold_elsewhere();
  Policy p;
  p.fail_when_locked = true;
  auto l = this->make(p);
  const auto start = Clock::now();
  try {
    l->lock();
    ADD_FAILURE() << "lock() succeeded while held elsewhere";
  } catch (const LockTimeout& e) {
    ADD_FAILURE() << "fail_when_locked must not wait or time out: " << e.what();
  } catch (const AlreadyLocked& e) {
    EXPECT_EQ(e.code(), errc::busy);
    EXPECT_EQ(e.operation(), "cannot lock");
    EXPECT_EQ(e.target(), this->target());
    EXPECT_NE(std::string(e.what()).find("cannot lock '" + this->target() + "'"), std::string::npos)
        << e.what();
  }
  EXPECT_LT(Clock::now() - start, kWaitLimit);
  EXPECT_FALSE(l->describe().held);
}

TYPED_TEST_P(Conformance, TimeoutThrowsLockTimeout) {
  static_assert(std::is_base_of_v<AlreadyLocked, LockTimeout>);
  static_assert(std::is_base_of_v<LockError, AlreadyLocked>);
  static_assert(std::is_base_of_v<std::system_error, LockError>);
  auto holder = this->hold_elsewhere();
  Policy p;
  p.timeout = 100ms;
  auto l = this->make(p);
  const auto start = Clock::now();
  try {
    l->lock();
    ADD_FAILURE() << "lock() succeeded while held elsewhere";
  } catch (const LockTimeout& e) {
    EXPECT_GE(Clock::now() - start, 100ms);
    EXPECT_EQ(e.code(), errc::timeout);
    EXPECT_NE(std::string(e.what()).find(this->target()), std::string::npos) << e.what();
  }
  // The same exception is an AlreadyLocked, a LockError and a std::system_error.
  EXPECT_THROW(l->lock(), AlreadyLocked);
  EXPECT_THROW(l->lock(), LockError);
  EXPECT_THROW(l->lock(), std::system_error);
  EXPECT_FALSE(l->describe().held);
}

TYPED_TEST_P(Conformance, WaiterIsGrantedTheLockAfterTheHolderReleases) {
  auto holder = this->hold_elsewhere();
  auto l = this->make();
  const fs::path dir = this->dir_.path();
  bool waiter_seen = false;
  std::promise<void> tried;
  std::future<void> first_try_failed = tried.get_future();
  std::thread releaser([&] {
    if constexpr (kernel_waiters<TypeParam>()) {
      // Release only once our waiter is blocked in the kernel, so the wake-up path is exercised.
      waiter_seen = test::wait_for_blocked_waiters(dir, 1);
    } else {
      // Nothing outside shows this family's waiter; release once it has seen the lock taken.
      waiter_seen = first_try_failed.wait_for(kWaitLimit) == std::future_status::ready;
    }
    holder->send('R');
  });
  if constexpr (!kernel_waiters<TypeParam>()) {
    EXPECT_FALSE(l->try_lock()) << "the lock was free while held elsewhere";
    tried.set_value();
  }
  const bool got = l->try_lock_for(kWaitLimit);
  releaser.join();
  EXPECT_TRUE(waiter_seen) << "the waiter never showed up as waiting";
  EXPECT_TRUE(got);
  EXPECT_TRUE(l->describe().held);
  EXPECT_EQ(holder->receive(), 'D');
}

TYPED_TEST_P(Conformance, SecondObjectInTheSameProcess) {
  auto held = this->fill();
  auto extra = this->make();
  if constexpr (TypeParam::kProcessScoped) {
    // fcntl locks belong to the process: a second object in it is never excluded ...
    EXPECT_TRUE(extra->try_lock());
    // ... while another process still is.
    EXPECT_FALSE(this->other_process_can_lock());
  } else {
    // flock, OFD and semaphore slots belong to the open file description: excluded.
    EXPECT_FALSE(extra->try_lock());
    held.front()->unlock();
    EXPECT_TRUE(extra->try_lock());
  }
}

TYPED_TEST_P(Conformance, AnotherProcessIsExcludedUntilRelease) {
  auto held = this->fill();
  EXPECT_FALSE(this->other_process_can_lock());
  held.back()->unlock();
  EXPECT_TRUE(this->other_process_can_lock());
}

TYPED_TEST_P(Conformance, DestructionReleases) {
  auto held = this->fill();
  EXPECT_FALSE(this->other_process_can_lock());
  held.pop_back();
  EXPECT_TRUE(this->other_process_can_lock());
}

REGISTER_TYPED_TEST_SUITE_P(Conformance, AcquireReleaseRoundTrip, NestedHoldWhereReentrant,
                            DescribeReflectsKindTargetAndState, ReleaseWhenNotHeldIsNotLocked,
                            WorksWithStdUniqueLock, WorksWithStdScopedLock,
                            SharedLockWhereSupported, TimedTryLockWhenFree,
                            BusyIsFalseNotAnException, TimedTryLockWaitsAtLeastItsTimeout,
                            FailWhenLockedThrowsAlreadyLocked, TimeoutThrowsLockTimeout,
                            WaiterIsGrantedTheLockAfterTheHolderReleases,
                            SecondObjectInTheSameProcess, AnotherProcessIsExcludedUntilRelease,
                            DestructionReleases);

}  // namespace conformance
