// State-machine property tests (rapidcheck rc::state): random sequences of operations on RLock,
// FileLock and BoundedSemaphore objects are run against a model, and every step checks the
// outcome and the resulting state of every object against the model.
//
// All objects live in this process on one fresh temporary directory per test case; the backends
// used (flock, ofd) make separate objects separate owners, so they contend like processes would.
// (posix locks are per process, so objects in one process never contend: not modelled here.)
//
// rapidcheck prints "Using configuration: seed=..." and, on failure, the shrunk command sequence.
// Replay a failure with that seed:   RC_PARAMS="seed=1234567890" ./locksmith_property_tests
// More cases:                        RC_PARAMS="max_success=2000" ./locksmith_property_tests
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>
#include <rapidcheck/state.h>

#include <array>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "locksmith/error.hpp"
#include "locksmith/file_lock.hpp"
#include "locksmith/semaphore.hpp"
#include "test_support.hpp"

namespace locksmith::property {
namespace {

constexpr auto kNoWait = Clock::time_point::min();

LockOptions options_for(Backend b) {
  LockOptions o;
  o.backend = b;
  return o;
}

rc::Gen<LockMode> gen_mode() { return rc::gen::element(LockMode::exclusive, LockMode::shared); }

bool compatible(LockMode a, LockMode b) { return a == LockMode::shared && b == LockMode::shared; }

// ---------------------------------------------------------------------------------------------
// RLock: a re-entrant count, one mode, and a second independent RLock on the same path that must
// be refused while the count is positive (unless both are shared).

struct RLockModel {
  unsigned count = 0;
  LockMode mode = LockMode::exclusive;
};

struct RLockSut {
  RLockSut(const std::filesystem::path& p, Backend b)
      : path(p), backend(b), lock(p, options_for(b)) {}
  std::filesystem::path path;
  Backend backend;
  RLock lock;
};

using RLockCommand = rc::state::Command<RLockModel, RLockSut>;

void check_rlock_state(const RLockModel& m, const RLockSut& s) {
  RC_ASSERT(s.lock.count() == m.count);
  RC_ASSERT(s.lock.owns_lock() == (m.count > 0));
  if (m.count > 0) RC_ASSERT(s.lock.held_mode() == std::optional<LockMode>(m.mode));
}

struct RLockAcquire : RLockCommand {
  LockMode mode = *gen_mode();

  void apply(RLockModel& m) const override {
    if (m.count == 0) {
      m.count = 1;
      m.mode = mode;
    } else if (m.mode == mode) {
      ++m.count;
    }
  }
  void run(const RLockModel& m, RLockSut& s) const override {
    const std::error_code ec = s.lock.acquire(mode, kNoWait);
    if (m.count > 0 && m.mode != mode) {
      RC_ASSERT(ec == std::errc::invalid_argument);
    } else {
      RC_ASSERT(!ec);
    }
    check_rlock_state(nextState(m), s);
  }
  void show(std::ostream& os) const override { os << "Acquire(" << to_string(mode) << ")"; }
};

struct RLockRelease : RLockCommand {
  void apply(RLockModel& m) const override {
    if (m.count > 0) --m.count;
  }
  void run(const RLockModel& m, RLockSut& s) const override {
    const std::error_code ec = s.lock.release();
    if (m.count == 0) {
      RC_ASSERT(ec == errc::not_locked);
    } else {
      RC_ASSERT(!ec);
    }
    check_rlock_state(nextState(m), s);
  }
  void show(std::ostream& os) const override { os << "Release"; }
};

struct RLockTryFromOther : RLockCommand {
  LockMode mode = *gen_mode();

  void apply(RLockModel& /*m*/) const override {}
  void run(const RLockModel& m, RLockSut& s) const override {
    RLock other(s.path, options_for(s.backend));
    const std::error_code ec = other.acquire(mode, kNoWait);
    if (m.count == 0 || compatible(m.mode, mode)) {
      RC_ASSERT(!ec);
      RC_ASSERT(!other.release());
    } else {
      RC_ASSERT(ec == errc::busy);
      RC_ASSERT(!other.owns_lock());
    }
    check_rlock_state(m, s);
  }
  void show(std::ostream& os) const override {
    os << "TryAcquireFromOther(" << to_string(mode) << ")";
  }
};

void check_rlock(Backend backend) {
  test::TempDir dir;
  RLockSut sut(dir / "rlock", backend);
  rc::state::check(
      RLockModel{}, sut,
      rc::state::gen::execOneOfWithArgs<RLockAcquire, RLockRelease, RLockTryFromOther>());
}

RC_GTEST_PROP(RLockStateMachine, Flock, ()) { check_rlock(Backend::flock); }
RC_GTEST_PROP(RLockStateMachine, Ofd, ()) { check_rlock(Backend::ofd); }

// ---------------------------------------------------------------------------------------------
// FileLock: three objects on one path, each holding nothing or one mode; shared+shared is
// compatible, anything with exclusive is busy; a second acquire on a holder is refused.

constexpr std::size_t kFileLocks = 3;

struct FileLockModel {
  std::array<std::optional<LockMode>, kFileLocks> held;

  bool can_take(std::size_t i, LockMode mode) const {
    for (std::size_t j = 0; j < held.size(); ++j) {
      if (j != i && held[j] && !compatible(*held[j], mode)) return false;
    }
    return true;
  }
};

struct FileLockSut {
  FileLockSut(const std::filesystem::path& p, Backend b) : path(p), backend(b) {
    for (std::size_t i = 0; i < kFileLocks; ++i) {
      locks.push_back(std::make_unique<FileLock>(p, options_for(b)));
    }
  }
  std::filesystem::path path;
  Backend backend;
  std::vector<std::unique_ptr<FileLock>> locks;
};

using FileLockCommand = rc::state::Command<FileLockModel, FileLockSut>;

void check_file_lock_state(const FileLockModel& m, const FileLockSut& s) {
  for (std::size_t i = 0; i < kFileLocks; ++i) {
    RC_ASSERT(s.locks[i]->owns_lock() == m.held[i].has_value());
    RC_ASSERT(s.locks[i]->held_mode() == m.held[i]);
  }
}

rc::Gen<std::size_t> gen_index(std::size_t n) { return rc::gen::inRange<std::size_t>(0, n); }

struct FileLockAcquire : FileLockCommand {
  std::size_t index = *gen_index(kFileLocks);
  LockMode mode = *gen_mode();

  void apply(FileLockModel& m) const override {
    if (!m.held[index] && m.can_take(index, mode)) m.held[index] = mode;
  }
  void run(const FileLockModel& m, FileLockSut& s) const override {
    const std::error_code ec = s.locks[index]->acquire(mode, kNoWait);
    if (m.held[index]) {
      RC_ASSERT(ec == std::errc::resource_deadlock_would_occur);
    } else if (m.can_take(index, mode)) {
      RC_ASSERT(!ec);
    } else {
      RC_ASSERT(ec == errc::busy);
    }
    check_file_lock_state(nextState(m), s);
  }
  void show(std::ostream& os) const override {
    os << "Acquire(" << index << ", " << to_string(mode) << ")";
  }
};

struct FileLockRelease : FileLockCommand {
  std::size_t index = *gen_index(kFileLocks);

  void apply(FileLockModel& m) const override { m.held[index].reset(); }
  void run(const FileLockModel& m, FileLockSut& s) const override {
    const std::error_code ec = s.locks[index]->release();
    if (m.held[index]) {
      RC_ASSERT(!ec);
    } else {
      RC_ASSERT(ec == errc::not_locked);
    }
    check_file_lock_state(nextState(m), s);
  }
  void show(std::ostream& os) const override { os << "Release(" << index << ")"; }
};

// A fresh object that tries and lets go at once: succeeds iff compatible with every holder.
struct FileLockOtherObjectTry : FileLockCommand {
  LockMode mode = *gen_mode();

  void apply(FileLockModel& /*m*/) const override {}
  void run(const FileLockModel& m, FileLockSut& s) const override {
    FileLock other(s.path, options_for(s.backend));
    const std::error_code ec = other.acquire(mode, kNoWait);
    if (m.can_take(kFileLocks, mode)) {
      RC_ASSERT(!ec);
      RC_ASSERT(!other.release());
    } else {
      RC_ASSERT(ec == errc::busy);
    }
    check_file_lock_state(m, s);
  }
  void show(std::ostream& os) const override { os << "OtherObjectTry(" << to_string(mode) << ")"; }
};

void check_file_lock(Backend backend) {
  test::TempDir dir;
  FileLockSut sut(dir / "lock", backend);
  rc::state::check(FileLockModel{}, sut,
                   rc::state::gen::execOneOfWithArgs<FileLockAcquire, FileLockRelease,
                                                     FileLockOtherObjectTry>());
}

RC_GTEST_PROP(FileLockStateMachine, Flock, ()) { check_file_lock(Backend::flock); }
RC_GTEST_PROP(FileLockStateMachine, Ofd, ()) { check_file_lock(Backend::ofd); }

// ---------------------------------------------------------------------------------------------
// BoundedSemaphore: K objects (1..6) on one name with maximum N (1..4). A non-waiting acquire by
// object i succeeds iff i holds no slot and a slot is free, and takes the lowest free slot
// (portalocker tries slots in numeric order); a release by a non-holder is not_locked.

struct SemaphoreModel {
  unsigned maximum = 1;
  std::vector<int> held;  // per object: slot number, or -1

  std::optional<int> lowest_free() const {
    for (int slot = 0; slot < static_cast<int>(maximum); ++slot) {
      bool taken = false;
      for (int h : held) taken = taken || h == slot;
      if (!taken) return slot;
    }
    return std::nullopt;
  }
  unsigned holders() const {
    unsigned n = 0;
    for (int h : held) n += h >= 0 ? 1 : 0;
    return n;
  }
};

struct SemaphoreSut {
  std::vector<std::unique_ptr<BoundedSemaphore>> sems;
};

using SemaphoreCommand = rc::state::Command<SemaphoreModel, SemaphoreSut>;

void check_semaphore_state(const SemaphoreModel& m, const SemaphoreSut& s) {
  RC_ASSERT(m.holders() <= m.maximum);
  unsigned holders = 0;
  for (std::size_t i = 0; i < s.sems.size(); ++i) {
    RC_ASSERT(s.sems[i]->held_slot() == m.held[i]);
    holders += s.sems[i]->held_slot() >= 0 ? 1 : 0;
  }
  RC_ASSERT(holders <= m.maximum);
}

struct SemaphoreAcquire : SemaphoreCommand {
  std::size_t index;
  explicit SemaphoreAcquire(const SemaphoreModel& m) : index(*gen_index(m.held.size())) {}

  void apply(SemaphoreModel& m) const override {
    if (m.held[index] < 0) {
      if (const auto slot = m.lowest_free()) m.held[index] = *slot;
    }
  }
  void run(const SemaphoreModel& m, SemaphoreSut& s) const override {
    const std::error_code ec = s.sems[index]->acquire(LockMode::exclusive, kNoWait);
    if (m.held[index] >= 0) {
      RC_ASSERT(ec == std::errc::resource_deadlock_would_occur);
    } else if (m.lowest_free()) {
      RC_ASSERT(!ec);
    } else {
      RC_ASSERT(ec == errc::busy);
    }
    check_semaphore_state(nextState(m), s);
  }
  void show(std::ostream& os) const override { os << "Acquire(" << index << ")"; }
};

struct SemaphoreRelease : SemaphoreCommand {
  std::size_t index;
  explicit SemaphoreRelease(const SemaphoreModel& m) : index(*gen_index(m.held.size())) {}

  void apply(SemaphoreModel& m) const override { m.held[index] = -1; }
  void run(const SemaphoreModel& m, SemaphoreSut& s) const override {
    const std::error_code ec = s.sems[index]->release();
    if (m.held[index] >= 0) {
      RC_ASSERT(!ec);
    } else {
      RC_ASSERT(ec == errc::not_locked);
    }
    check_semaphore_state(nextState(m), s);
  }
  void show(std::ostream& os) const override { os << "Release(" << index << ")"; }
};

void check_semaphore(Backend backend) {
  const auto maximum = *rc::gen::inRange(1u, 5u);
  const auto objects = *rc::gen::inRange<std::size_t>(1, 7);
  test::TempDir dir;
  SemaphoreOptions options;
  options.backend = backend;
  SemaphoreSut sut;
  for (std::size_t i = 0; i < objects; ++i) {
    sut.sems.push_back(
        std::make_unique<BoundedSemaphore>(maximum, "prop_sem", dir.path(), options));
  }
  SemaphoreModel initial;
  initial.maximum = maximum;
  initial.held.assign(objects, -1);
  rc::state::check(initial, sut,
                   rc::state::gen::execOneOfWithArgs<SemaphoreAcquire, SemaphoreRelease>());
}

RC_GTEST_PROP(SemaphoreStateMachine, Flock, ()) { check_semaphore(Backend::flock); }
RC_GTEST_PROP(SemaphoreStateMachine, Ofd, ()) { check_semaphore(Backend::ofd); }

}  // namespace
}  // namespace locksmith::property
