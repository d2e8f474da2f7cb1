// FileLock options, RLock counting, TemporaryFileLock and PidFileLock specifics.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "locksmith/file_lock.hpp"
#include "test_support.hpp"
#include "unit_helpers.hpp"

namespace locksmith::unit {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_file(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << text;
}

struct stat stat_of(const fs::path& p) {
  struct stat st {};
  EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
  return st;
}

struct stat fstat_of(native_handle fd) {
  struct stat st {};
  EXPECT_EQ(::fstat(fd, &st), 0);
  return st;
}

// ---------------------------------------------------------------------------------------------
// FileLock

TEST(FileLock, CreatesWithPermissionsAndNeverDeletes) {
  test::TempDir dir;
  LockOptions o;
  o.permissions = 0640;
  FileLock l(dir / "lock", o);
  EXPECT_FALSE(fs::exists(dir / "lock"));  // nothing happens before acquire
  EXPECT_FALSE(l.owns_lock());
  EXPECT_EQ(l.native(), -1);
  EXPECT_FALSE(l.held_mode().has_value());
  l.lock();
  EXPECT_TRUE(l.owns_lock());
  EXPECT_GE(l.native(), 0);
  EXPECT_EQ(l.held_mode(), LockMode::exclusive);
  EXPECT_EQ(stat_of(dir / "lock").st_mode & 07777, 0640u & ~current_umask());
  EXPECT_EQ(l.path(), dir / "lock");
  EXPECT_EQ(l.options().permissions, 0640u);
  l.unlock();
  EXPECT_TRUE(fs::exists(dir / "lock")) << "FileLock must never delete the lock file";
}

TEST(FileLock, AppendModeKeepsContent) {
  test::TempDir dir;
  write_file(dir / "lock", "previous");
  FileLock l(dir / "lock");
  l.lock();
  ASSERT_EQ(::write(l.native(), "+more", 5), 5);
  l.unlock();
  EXPECT_EQ(read_file(dir / "lock"), "previous+more");
}

TEST(FileLock, WriteModeTruncatesOnlyOnceTheExclusiveLockIsHeld) {
  test::TempDir dir;
  write_file(dir / "lock", "holder's data");
  FileLock holder(dir / "lock");
  holder.lock();
  LockOptions o;
  o.open_mode = OpenMode::write;
  FileLock writer(dir / "lock", o);
  EXPECT_FALSE(writer.try_lock());
  EXPECT_EQ(read_file(dir / "lock"), "holder's data") << "truncated before the lock was held";
  EXPECT_FALSE(writer.try_lock_shared());
  holder.unlock();
  ASSERT_TRUE(writer.try_lock_shared());  // shared: no truncation
  EXPECT_EQ(read_file(dir / "lock"), "holder's data");
  writer.unlock();
  ASSERT_TRUE(writer.try_lock());
  EXPECT_EQ(read_file(dir / "lock"), "");
}

TEST(FileLock, ReadModes) {
  test::TempDir dir;
  LockOptions ro;
  ro.open_mode = OpenMode::read;
  ro.backend = Backend::posix;
  FileLock missing(dir / "lock", ro);
  EXPECT_EQ(missing.acquire(LockMode::shared, Clock::time_point::min()),
            std::errc::no_such_file_or_directory);
  EXPECT_FALSE(fs::exists(dir / "lock"));

  LockOptions rw;
  rw.open_mode = OpenMode::read_write;
  FileLock rw_missing(dir / "lock", rw);
  EXPECT_EQ(rw_missing.acquire(LockMode::exclusive, Clock::time_point::min()),
            std::errc::no_such_file_or_directory);

  write_file(dir / "lock", "x");
  EXPECT_TRUE(rw_missing.try_lock());
  rw_missing.unlock();
  FileLock reader(dir / "lock", ro);
  EXPECT_TRUE(reader.try_lock_shared());
  reader.unlock();
  // An exclusive fcntl lock on a read-only fd is an OS error (EBADF), not "busy".
  try {
    (void)reader.try_lock();
    ADD_FAILURE() << "exclusive posix lock on a read-only fd succeeded";
  } catch (const LockError& e) {
    EXPECT_EQ(e.code(), std::errc::bad_file_descriptor);
    EXPECT_FALSE(reader.owns_lock());
  }
}

TEST(FileLock, AcquireWhileHeldIsRefused) {
  test::TempDir dir;
  FileLock l(dir / "lock");
  l.lock();
  EXPECT_EQ(l.acquire(LockMode::exclusive, kForever), std::errc::resource_deadlock_would_occur);
  EXPECT_THROW((void)l.try_lock(), LockError);
  EXPECT_TRUE(l.owns_lock());
}

// keep_open: release unlocks without closing, the next acquire locks the same open file; a file
// replaced meanwhile is not reused.
TEST(FileLock, KeepOpenReusesTheDescriptorButNotAReplacedFile) {
  test::TempDir dir;
  LockOptions o;
  o.keep_open = true;
  FileLock l(dir / "lock", o);
  FileLock other(dir / "lock");
  l.lock();
  struct stat first {};
  ASSERT_EQ(::fstat(l.native(), &first), 0);
  l.unlock();
  EXPECT_FALSE(l.owns_lock());
  EXPECT_EQ(l.native(), -1);
  ASSERT_TRUE(other.try_lock());  // released for real, though the file is still open here
  other.unlock();
  for (const Backend b : {Backend::flock, Backend::posix, Backend::ofd}) {
    LockOptions ob = o;
    ob.backend = b;
    FileLock kb(dir / ("b" + std::to_string(static_cast<int>(b))), ob);
    for (int round = 0; round < 3; ++round) {
      ASSERT_TRUE(kb.try_lock()) << to_string(b) << " round " << round;
      kb.unlock();
    }
  }
  // The path now names a new file (made while the old one is still open here, so it has its own
  // inode): keep_open must lock that one, not the kept orphan.
  ASSERT_EQ(::unlink((dir / "lock").c_str()), 0);
  std::ofstream(dir / "lock").put('x');
  struct stat fresh {};
  ASSERT_EQ(::stat((dir / "lock").c_str(), &fresh), 0);
  ASSERT_NE(fresh.st_ino, first.st_ino);
  l.lock();
  struct stat second {};
  ASSERT_EQ(::fstat(l.native(), &second), 0);
  EXPECT_EQ(second.st_ino, fresh.st_ino);
  FileLock third(dir / "lock");
  EXPECT_FALSE(third.try_lock());  // we hold the file the path names
  l.unlock();
  EXPECT_TRUE(third.try_lock());
}

TEST(FileLock, MoveKeepsTheLockAndMoveAssignReleasesTheOld) {
  test::TempDir dir;
  FileLock a(dir / "a");
  a.lock();
  FileLock moved(std::move(a));
  EXPECT_TRUE(moved.owns_lock());
  EXPECT_FALSE(a.owns_lock());  // NOLINT(bugprone-use-after-move): moved-from state is defined
  FileLock probe_a(dir / "a");
  EXPECT_FALSE(probe_a.try_lock());

  FileLock b(dir / "b");
  b.lock();
  b = std::move(moved);  // releases "b", takes over "a"
  EXPECT_TRUE(b.owns_lock());
  EXPECT_EQ(b.path(), dir / "a");
  FileLock probe_b(dir / "b");
  EXPECT_TRUE(probe_b.try_lock());
  EXPECT_FALSE(probe_a.try_lock());
  b.unlock();
  EXPECT_TRUE(probe_a.try_lock());
}

TEST(FileLock, DestructorReleasesForEveryBackend) {
  test::TempDir dir;
  for (Backend b : {Backend::flock, Backend::posix, Backend::ofd}) {
    LockOptions o;
    o.backend = b;
    auto l = std::make_unique<FileLock>(dir / "lock", o);
    l->lock();
    l.reset();
    Subprocess probe = Subprocess::fork([&](Channel&) {
      FileLock other(dir / "lock", o);
      return other.try_lock() ? 0 : 1;
    });
    EXPECT_EQ(probe.wait_exit(), 0) << to_string(b);
  }
}

TEST(FileLock, UnsupportedBackendFailsCleanly) {
  test::TempDir dir;
  LockOptions o;
  o.backend = Backend::windows;
  FileLock l(dir / "lock", o);
  EXPECT_EQ(l.acquire(LockMode::exclusive, kForever), errc::unsupported);
  EXPECT_FALSE(l.owns_lock());
  EXPECT_EQ(l.describe().kind, "windows");
}

// ---------------------------------------------------------------------------------------------
// RLock

TEST(RLock, CountsReentry) {
  test::TempDir dir;
  RLock r(dir / "lock");
  FileLock other(dir / "lock");
  EXPECT_EQ(r.count(), 0u);
  r.lock();
  EXPECT_TRUE(r.try_lock());
  EXPECT_TRUE(r.try_lock_for(10ms));
  EXPECT_EQ(r.count(), 3u);
  EXPECT_FALSE(other.try_lock());
  r.unlock();
  r.unlock();
  EXPECT_EQ(r.count(), 1u);
  EXPECT_TRUE(r.owns_lock());
  EXPECT_FALSE(other.try_lock()) << "released before the count returned to zero";
  r.unlock();
  EXPECT_EQ(r.count(), 0u);
  EXPECT_FALSE(r.owns_lock());
  EXPECT_TRUE(other.try_lock());
}

TEST(RLock, OverReleaseIsNotLocked) {
  test::TempDir dir;
  RLock r(dir / "lock");
  r.lock();
  r.unlock();
  EXPECT_EQ(r.release(), errc::not_locked);
  EXPECT_THROW(r.unlock(), NotLocked);
  EXPECT_EQ(r.count(), 0u);
}

TEST(RLock, ReentryMustAskForTheHeldMode) {
  test::TempDir dir;
  RLock r(dir / "lock");
  r.lock();
  EXPECT_EQ(r.acquire(LockMode::shared, kForever), std::errc::invalid_argument);
  try {
    (void)r.try_lock_shared();
    ADD_FAILURE() << "mode change on re-entry accepted";
  } catch (const LockError& e) {
    EXPECT_EQ(e.code(), std::errc::invalid_argument);
  }
  EXPECT_EQ(r.count(), 1u);
  EXPECT_EQ(r.held_mode(), LockMode::exclusive);
  r.unlock();

  r.lock_shared();
  EXPECT_TRUE(r.try_lock_shared());
  EXPECT_EQ(r.count(), 2u);
  EXPECT_EQ(r.acquire(LockMode::exclusive, kForever), std::errc::invalid_argument);
  r.unlock_shared();
  r.unlock_shared();
  EXPECT_FALSE(r.owns_lock());
}

TEST(RLock, FailedFirstAcquireLeavesCountZero) {
  test::TempDir dir;
  FileLock holder(dir / "lock");
  holder.lock();
  RLock r(dir / "lock");
  EXPECT_FALSE(r.try_lock());
  EXPECT_EQ(r.count(), 0u);
  EXPECT_EQ(r.release(), errc::not_locked);
}

TEST(RLock, DestructionReleasesWhateverTheCount) {
  test::TempDir dir;
  {
    RLock r(dir / "lock");
    r.lock();
    r.lock();
  }
  FileLock other(dir / "lock");
  EXPECT_TRUE(other.try_lock());
}

// ---------------------------------------------------------------------------------------------
// TemporaryFileLock

TEST(TemporaryFileLock, FileExistsOnlyWhileHeld) {
  test::TempDir dir;
  TemporaryFileLock t(dir / "lock");
  EXPECT_TRUE(t.options().fail_when_locked);
  EXPECT_TRUE(t.options().check_inode);
  EXPECT_FALSE(fs::exists(dir / "lock"));
  t.lock();
  EXPECT_TRUE(fs::exists(dir / "lock"));
  t.unlock();
  EXPECT_FALSE(fs::exists(dir / "lock"));
  EXPECT_TRUE(listing(dir.path()).empty());
}

TEST(TemporaryFileLock, InodeCheckIsForcedOn) {
  test::TempDir dir;
  LockOptions o;
  o.check_inode = false;
  TemporaryFileLock t(dir / "lock", o);
  EXPECT_TRUE(t.options().check_inode);
  EXPECT_FALSE(t.options().fail_when_locked);
}

TEST(TemporaryFileLock, DefaultFailsAtOnceWhenLocked) {
  test::TempDir dir;
  TemporaryFileLock a(dir / "lock");
  TemporaryFileLock b(dir / "lock");
  a.lock();
  const auto start = Clock::now();
  EXPECT_THROW(b.lock(), AlreadyLocked);
  EXPECT_LT(Clock::now() - start, kWaitLimit);
  a.unlock();
  b.lock();
  EXPECT_TRUE(fs::exists(dir / "lock"));
}

// The holder unlinks the file (while still locked) on release; a waiter blocked on the old inode
// must notice and end up holding the new file the path names.
TEST(TemporaryFileLock, WaiterFollowsTheUnlinkToTheNewInode) {
  test::TempDir dir;
  TemporaryFileLock holder(dir / "lock");
  holder.lock();
  LockOptions o = TemporaryFileLock::default_options();
  o.fail_when_locked = false;
  TemporaryFileLock waiter(dir / "lock", o);
  bool got = false;
  std::thread t([&] { got = waiter.try_lock_for(kWaitLimit); });
  EXPECT_TRUE(wait_for_blocked_waiters(dir.path(), 1));
  holder.unlock();
  t.join();
  ASSERT_TRUE(got);
  const struct stat held = fstat_of(waiter.native());
  const struct stat named = stat_of(dir / "lock");
  EXPECT_EQ(held.st_ino, named.st_ino) << "the waiter holds an orphaned inode";
  EXPECT_EQ(held.st_nlink, 1u);
  // A third object is excluded from the file the path now names.
  TemporaryFileLock third(dir / "lock");
  EXPECT_FALSE(third.try_lock());
}

// A third party replaces the lock file (rename over it) while a waiter waits: the old holder's
// release must not delete the new file, and the waiter must end up on the new inode.
TEST(TemporaryFileLock, WaiterFollowsAReplacement) {
  test::TempDir dir;
  TemporaryFileLock holder(dir / "lock");
  holder.lock();
  LockOptions o = TemporaryFileLock::default_options();
  o.fail_when_locked = false;
  TemporaryFileLock waiter(dir / "lock", o);
  bool got = false;
  std::thread t([&] { got = waiter.try_lock_for(kWaitLimit); });
  EXPECT_TRUE(wait_for_blocked_waiters(dir.path(), 1));
  write_file(dir / "replacement", "new");
  fs::rename(dir / "replacement", dir / "lock");
  const ino_t new_inode = stat_of(dir / "lock").st_ino;
  holder.unlock();
  EXPECT_TRUE(fs::exists(dir / "lock")) << "release deleted a file it did not lock";
  t.join();
  ASSERT_TRUE(got);
  EXPECT_EQ(fstat_of(waiter.native()).st_ino, new_inode);
  waiter.unlock();
  EXPECT_FALSE(fs::exists(dir / "lock"));
}

// ---------------------------------------------------------------------------------------------
// PidFileLock

TEST(PidFileLock, WritesOurPidWithoutNewlineAndCleansUp) {
  test::TempDir dir;
  PidFileLock p(dir / "daemon.pid");
  EXPECT_FALSE(p.holder_pid().has_value());
  p.lock();
  EXPECT_EQ(read_file(dir / "daemon.pid"), std::to_string(::getpid()));
  EXPECT_EQ(p.holder_pid(), ::getpid());
  EXPECT_TRUE(fs::exists(dir / "daemon.pid.lock")) << "sidecar missing";
  EXPECT_EQ(p.path(), dir / "daemon.pid");
  EXPECT_EQ(p.describe().mechanism, "flock");

  PidFileLock second(dir / "daemon.pid");
  EXPECT_FALSE(second.try_lock());
  EXPECT_EQ(second.holder_pid(), ::getpid());
  EXPECT_EQ(read_file(dir / "daemon.pid"), std::to_string(::getpid())) << "loser touched it";

  p.unlock();
  EXPECT_FALSE(fs::exists(dir / "daemon.pid"));
  EXPECT_FALSE(fs::exists(dir / "daemon.pid.lock"));
  EXPECT_TRUE(listing(dir.path()).empty());
  EXPECT_FALSE(p.holder_pid().has_value());
}

TEST(PidFileLock, HolderPidOfAnotherProcess) {
  test::TempDir dir;
  Subprocess holder = Subprocess::fork([&](Channel& self) {
    PidFileLock p(dir / "daemon.pid");
    if (!p.try_lock()) return 1;
    self.send('L');
    (void)self.receive();
    return 0;
  });
  ASSERT_EQ(holder.receive(), 'L');
  PidFileLock p(dir / "daemon.pid");
  EXPECT_FALSE(p.try_lock());
  EXPECT_EQ(p.holder_pid(), holder.pid());
}

TEST(PidFileLock, HolderPidRejectsGarbage) {
  test::TempDir dir;
  PidFileLock p(dir / "daemon.pid");
  for (const std::string text : {"", "abc", "12 ", "0", "-5", "12\n"}) {
    write_file(dir / "daemon.pid", text);
    EXPECT_FALSE(p.holder_pid().has_value()) << "'" << text << "'";
  }
  write_file(dir / "daemon.pid", std::string(70000, '1'));  // not a small file
  EXPECT_FALSE(p.holder_pid().has_value());
  write_file(dir / "daemon.pid", "4242");
  EXPECT_EQ(p.holder_pid(), 4242);
}

TEST(PidFileLock, OverwritesAStalePidFile) {
  test::TempDir dir;
  write_file(dir / "daemon.pid", "99999999999");
  PidFileLock p(dir / "daemon.pid");
  p.lock();
  EXPECT_EQ(read_file(dir / "daemon.pid"), std::to_string(::getpid()));
}

TEST(PidFileLock, SharedIsRefused) {
  test::TempDir dir;
  PidFileLock p(dir / "daemon.pid");
  EXPECT_EQ(p.acquire(LockMode::shared, kForever), std::errc::invalid_argument);
  EXPECT_FALSE(p.supports_shared());
  EXPECT_TRUE(listing(dir.path()).empty());
}

TEST(PidFileLock, PidPathThatCannotBeWrittenLeavesNothingHeld) {
  test::TempDir dir;
  fs::create_directory(dir / "daemon.pid");
  PidFileLock p(dir / "daemon.pid");
  EXPECT_EQ(p.acquire(LockMode::exclusive, kForever), std::errc::is_a_directory);
  EXPECT_FALSE(p.describe().held);
  EXPECT_FALSE(fs::exists(dir / "daemon.pid.lock")) << "sidecar left behind";
  EXPECT_TRUE(fs::is_directory(dir / "daemon.pid"));
  PidFileLock other(dir / "other.pid");
  EXPECT_TRUE(other.try_lock());
}

TEST(PidFileLock, ReleaseReportsAFailedRemovalButStillReleases) {
  test::TempDir dir;
  PidFileLock p(dir / "daemon.pid");
  p.lock();
  fs::remove(dir / "daemon.pid");
  fs::create_directory(dir / "daemon.pid");  // unlink() of it fails with EISDIR
  EXPECT_EQ(p.release(), std::errc::is_a_directory);
  EXPECT_FALSE(p.describe().held);
  EXPECT_FALSE(fs::exists(dir / "daemon.pid.lock"));
  EXPECT_EQ(p.release(), errc::not_locked);
}

}  // namespace
}  // namespace locksmith::unit
