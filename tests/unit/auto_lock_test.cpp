// AutoLock: the mechanism it keeps on this filesystem, and its fallback when the kernel refuses a
// kind of lock. The refusals are real: a child process installs a seccomp filter that makes
// flock(2), or every fcntl lock command too, fail with ENOLCK (what NFS without a lock manager
// returns), and then locks through AutoLock.
#include "locksmith/auto_lock.hpp"

#include <sys/syscall.h>

#include <gtest/gtest.h>

#include <cerrno>

#include "locksmith/spec.hpp"
#include "test_support.hpp"
#include "unit_helpers.hpp"

namespace locksmith::unit {
namespace {

namespace fs = std::filesystem;

// Makes flock(2) fail with ENOLCK in this process; with `fcntl_too`, fcntl's lock-setting
// commands as well.
bool refuse_locks(bool fcntl_too) { return test::fail_syscalls({SYS_flock}, ENOLCK, fcntl_too); }

// What a child that refuses some locks saw: the mechanism AutoLock chose, as a letter
// (f = flock, p = posix, l = link, ? = other), then 'B' if the lock was busy or 'H' if it held it.
std::string locked_by_refusing_child(const fs::path& path, bool fcntl_too) {
  Subprocess child = Subprocess::fork([&](Channel& self) {
    if (!refuse_locks(fcntl_too)) {
      self.send('S');
      return 0;
    }
    AutoLockOptions o;
    o.fail_when_locked = true;
    AutoLock lock(path, o);
    const bool got = lock.try_lock();
    const auto m = lock.mechanism();
    self.send(!m                     ? '-'
              : *m == Backend::flock ? 'f'
              : *m == Backend::posix ? 'p'
              : *m == Backend::link  ? 'l'
                                     : '?');
    self.send(got ? 'H' : 'B');
    return 0;
  });
  std::string seen;
  while (auto c = child.receive()) seen += *c;
  EXPECT_EQ(child.wait_exit(), 0);
  return seen;
}

TEST(AutoLock, KeepsFlockWhereItWorks) {
  const test::TempDir dir;
  AutoLock lock(dir / "x");
  EXPECT_EQ(lock.describe().mechanism, "undecided");
  EXPECT_FALSE(lock.mechanism());
  lock.lock();
  EXPECT_EQ(lock.mechanism(), Backend::flock);
  const LockInfo info = lock.describe();
  EXPECT_EQ(info.kind, "auto");
  EXPECT_EQ(info.mechanism, "flock");
  EXPECT_EQ(info.target, (dir / "x").string());
  EXPECT_TRUE(info.held);
  // It is a real flock lock: another open file description conflicts.
  FileLock other(dir / "x", {});
  EXPECT_FALSE(other.try_lock());
  lock.unlock();
  EXPECT_TRUE(other.try_lock());
  // Busy means the mechanism works: it is kept.
  AutoLock second(dir / "x");
  EXPECT_FALSE(second.try_lock());
  EXPECT_EQ(second.mechanism(), Backend::flock);
}

TEST(AutoLock, CandidatesCanBeChosen) {
  const test::TempDir dir;
  AutoLockOptions o;
  o.candidates = {Backend::link};
  AutoLock lock(dir / "x", o);
  lock.lock_shared();  // the link lock is exclusive only: a shared request takes it exclusively
  EXPECT_EQ(lock.describe().mechanism, "link");
  EXPECT_EQ(lock.describe().mode, LockMode::exclusive);
  EXPECT_TRUE(fs::exists(lock.link_path()));
  LinkLock peer(lock.link_path());
  EXPECT_FALSE(peer.try_lock());
  lock.unlock();
  EXPECT_FALSE(fs::exists(lock.link_path()));
  EXPECT_EQ(lock.release(), errc::not_locked);
}

TEST(AutoLock, OtherErrorsChooseNothing) {
  const test::TempDir dir;
  AutoLock lock(dir / "missing" / "x");
  const auto ec = lock.acquire(LockMode::exclusive, Clock::time_point::min());
  EXPECT_EQ(ec, std::errc::no_such_file_or_directory);
  EXPECT_FALSE(lock.mechanism());
  EXPECT_EQ(lock.release(), errc::not_locked);
}

TEST(AutoLock, UnavailableErrors) {
  EXPECT_TRUE(is_mechanism_unavailable(std::make_error_code(std::errc::no_lock_available)));
  EXPECT_TRUE(is_mechanism_unavailable(std::make_error_code(std::errc::operation_not_supported)));
  EXPECT_TRUE(is_mechanism_unavailable(std::make_error_code(std::errc::invalid_argument)));
  EXPECT_FALSE(is_mechanism_unavailable(std::make_error_code(std::errc::permission_denied)));
  EXPECT_FALSE(is_mechanism_unavailable(make_error_code(errc::busy)));
}

TEST(AutoLock, FallsBackToFcntlWhenFlockIsRefused) {
  const test::TempDir dir;
  const fs::path path = dir / "x";
  const std::string first = locked_by_refusing_child(path, false);
  if (first == "S") GTEST_SKIP() << "no seccomp filter on this CPU or kernel";
  EXPECT_EQ(first, "pH");
  // An fcntl lock held here excludes it.
  LockOptions o;
  o.backend = Backend::posix;
  FileLock held(path, o);
  held.lock();
  EXPECT_EQ(locked_by_refusing_child(path, false), "pB");
}

TEST(AutoLock, FallsBackToLinkWhenNoKernelLockWorks) {
  const test::TempDir dir;
  const fs::path path = dir / "x";
  const std::string first = locked_by_refusing_child(path, true);
  if (first == "S") GTEST_SKIP() << "no seccomp filter on this CPU or kernel";
  EXPECT_EQ(first, "lH");
  // The child died holding nothing (it released on exit); a link lock held here excludes it.
  AutoLockOptions o;
  o.candidates = {Backend::link};
  AutoLock held(path, o);
  held.lock();
  EXPECT_EQ(locked_by_refusing_child(path, true), "lB");
}

TEST(AutoLock, Spec) {
  const test::TempDir dir;
  auto lock = open_lock("auto:" + (dir / "x").string() + "?shared=1&timeout=1s&lifetime=30s");
  auto* a = dynamic_cast<AutoLock*>(lock.get());
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->default_mode(), LockMode::shared);
  lock->lock();
  EXPECT_EQ(lock->describe().mode, LockMode::shared);
  EXPECT_THROW(open_lock("auto:/x?lifetime=0"), LockError);
  EXPECT_THROW(open_lock("auto:/x?max=2"), LockError);
}

}  // namespace
}  // namespace locksmith::unit
