// Unit tests of LinkLock: the flufl.lock file format, expiry, refresh, details, state, breaking
// rules, errors, and the std Lockable family.
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <memory>
#include <mutex>
#include <stop_token>
#include <string>
#include <thread>

#include "link_test_util.hpp"
#include "locksmith/error.hpp"
#include "locksmith/link_lock.hpp"
#include "locksmith/spec.hpp"
#include "subprocess.hpp"
#include "test_support.hpp"

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using locksmith::Clock;
using locksmith::errc;
using locksmith::LinkDetails;
using locksmith::LinkLock;
using locksmith::LinkLockOptions;
using locksmith::LinkState;
using locksmith::LinkWait;
using locksmith::LockMode;
using locksmith::open_lock;
using locksmith::test::TempDir;
namespace lt = locksmith::linktest;
using locksmith::test::Channel;
using locksmith::test::Subprocess;

void write_file(const fs::path& p, const std::string& content) {
  std::ofstream(p, std::ios::binary | std::ios::trunc) << content;
}

TEST(LinkLockUnit, AcquireReleaseRoundTrip) {
  TempDir dir;
  const fs::path path = dir / "res.lock";
  LinkLock lock(path);
  EXPECT_FALSE(lock.owns_lock());
  ASSERT_FALSE(lock.acquire(LockMode::exclusive, Clock::time_point::min()));
  EXPECT_TRUE(lock.owns_lock());
  EXPECT_TRUE(fs::exists(path));
  EXPECT_TRUE(lock.is_locked());
  EXPECT_TRUE(lock.describe().held);
  EXPECT_EQ(lock.describe().kind, "link");
  EXPECT_EQ(lock.describe().token.value_or(""), lock.claim_path());
  ASSERT_FALSE(lock.release());
  EXPECT_FALSE(fs::exists(path));
  EXPECT_FALSE(lock.is_locked());
  EXPECT_EQ(lock.release(), make_error_code(errc::not_locked));
  // Again, with the kept claim.
  ASSERT_FALSE(lock.acquire(LockMode::exclusive, Clock::time_point::min()));
  EXPECT_TRUE(fs::exists(path));
  ASSERT_FALSE(lock.release());
}

TEST(LinkLockUnit, ClaimFileNameAndContentAreFluflBytes) {
  TempDir dir;
  const fs::path path = dir / "res.lock";
  LinkLock lock(path);
  ASSERT_TRUE(lock.try_lock());
  const std::string claim = lock.claim_path();
  const std::string prefix =
      path.string() + "|" + lock.hostname() + "|" + std::to_string(::getpid()) + "|";
  ASSERT_EQ(claim.substr(0, prefix.size()), prefix);
  const std::string random = claim.substr(prefix.size());
  ASSERT_FALSE(random.empty());
  EXPECT_EQ(random.find_first_not_of("0123456789"), std::string::npos) << random;
  EXPECT_LT(std::stoull(random), std::uint64_t{1} << 63);
  EXPECT_EQ(lock.hostname(), locksmith::link_lock_hostname());
  // Content: exactly the claim path, no newline, in both names of the one inode.
  EXPECT_EQ(lt::read_file(claim), claim);
  EXPECT_EQ(lt::read_file(path), claim);
  const auto st = lt::stat_of(path);
  const auto cst = lt::stat_of(claim);
  EXPECT_EQ(st.st_ino, cst.st_ino);
  EXPECT_EQ(st.st_nlink, 2u);
  EXPECT_EQ(
      st.st_mode & 0777, 0644u & ~[] {
        const mode_t m = ::umask(0);
        ::umask(m);
        return m;
      }());
  lock.unlock();
  // Two objects make two different claims.
  LinkLock other(path);
  ASSERT_TRUE(other.try_lock());
  EXPECT_NE(other.claim_path(), claim);
  other.unlock();
}

namespace {
std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}
std::int64_t ns_of(const struct timespec& ts) {
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}
}  // namespace

// The expiry is exact to the nanosecond (a whole-second truncation once let a 1 s lifetime with
// slop 0 be broken after 0.22 s): never earlier than acquire + lifetime.
TEST(LinkLockUnit, MtimeIsExactExpiry) {
  TempDir dir;
  const fs::path path = dir / "res.lock";
  LinkLockOptions opts;
  opts.lifetime = 1500ms;
  LinkLock lock(path, opts);
  const std::int64_t before = now_ns();
  ASSERT_TRUE(lock.try_lock());
  const std::int64_t after = now_ns();
  const auto st = lt::stat_of(path);
  EXPECT_EQ(ns_of(st.st_atim), ns_of(st.st_mtim));
  EXPECT_GE(ns_of(st.st_mtim), before + 1500000000);
  EXPECT_LE(ns_of(st.st_mtim), after + 1500000000);
  const auto exp = lock.expiration();
  ASSERT_TRUE(exp.has_value());
  EXPECT_EQ(std::chrono::duration_cast<std::chrono::nanoseconds>(exp->time_since_epoch()).count(),
            ns_of(st.st_mtim));
  // The holder's own bound is that expiry, on the steady clock.
  EXPECT_GT(lock.valid_until(), Clock::now() + 1s);
  EXPECT_LE(lock.valid_until(), Clock::now() + 1500ms);
  lock.unlock();
  EXPECT_FALSE(lock.expiration().has_value());
}

TEST(LinkLockUnit, SubSecondLifetimeFromSpec) {
  TempDir dir;
  auto lock = open_lock("link:" + (dir / "res.lock").string() + "?lifetime=250ms&slop=0s");
  EXPECT_EQ(lock->keep_alive_interval(), std::chrono::duration_cast<Clock::duration>(250ms) / 3);
  EXPECT_EQ(lock->expiry_bound(), std::optional<Clock::duration>(250ms));
  const std::int64_t before = now_ns();
  ASSERT_TRUE(lock->try_lock());
  EXPECT_GE(ns_of(lt::stat_of(dir / "res.lock").st_mtim), before + 250000000);
  lock->unlock();
}

TEST(LinkLockUnit, RefreshMovesExpiry) {
  TempDir dir;
  const fs::path path = dir / "res.lock";
  LinkLock lock(path);
  EXPECT_EQ(lock.refresh(), make_error_code(errc::not_locked));
  ASSERT_TRUE(lock.try_lock());
  ASSERT_TRUE(lt::set_mtime(path, lt::now_seconds() - 100));
  const std::int64_t before = now_ns();
  ASSERT_FALSE(lock.refresh(std::chrono::seconds(300)));
  EXPECT_EQ(lock.lifetime(), 300s);
  const auto st = lt::stat_of(path);
  EXPECT_GE(ns_of(st.st_mtim), before + 300000000000);
  EXPECT_LE(ns_of(st.st_mtim), now_ns() + 300000000000);
  // is_locked() refreshes too, like flufl's.
  ASSERT_TRUE(lt::set_mtime(path, lt::now_seconds() - 100));
  EXPECT_TRUE(lock.is_locked());
  EXPECT_GE(ns_of(lt::stat_of(path).st_mtim), before + 300000000000);
  lock.unlock();
}

TEST(LinkLockUnit, DetailsNameTheHolder) {
  TempDir dir;
  const fs::path path = dir / "res.lock";
  LinkLockOptions opts;
  opts.hostname = "host.example.org";
  LinkLock lock(path, opts);
  EXPECT_FALSE(lock.details().has_value());
  ASSERT_TRUE(lock.try_lock());
  const auto d = lock.details();
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(*d, (LinkDetails{"host.example.org", static_cast<long>(::getpid()), path.string()}));
  // Another object reads the same details.
  LinkLock reader(path);
  EXPECT_EQ(reader.details(), d);
  lock.unlock();
  EXPECT_FALSE(reader.details().has_value());
}

TEST(LinkLockUnit, StateForEachCase) {
  TempDir dir;
  const fs::path path = dir / "res.lock";
  LinkLock lock(path);
  const std::string host = lock.hostname();
  EXPECT_EQ(lock.state(), LinkState::unlocked);
  ASSERT_TRUE(lock.try_lock());
  EXPECT_EQ(lock.state(), LinkState::ours);
  ASSERT_TRUE(lt::set_mtime(path, lt::now_seconds() - 5));
  EXPECT_EQ(lock.state(), LinkState::ours_expired);
  lock.unlock();

  // A dead process on our host: stale.
  const pid_t dead = locksmith::test::dead_pid();
  ASSERT_GT(dead, 0);
  ASSERT_NE(::kill(dead, 0), 0);  // reaped: no such process
  const auto place = [&](const std::string& h, const std::string& pid, long long mtime) {
    write_file(path, path.string() + "|" + h + "|" + pid + "|42");
    ASSERT_TRUE(lt::set_mtime(path, mtime));
  };
  place(host, std::to_string(dead), lt::now_seconds() + 100);
  EXPECT_EQ(lock.state(), LinkState::stale);
  // A live process that is not us: unknown while fresh, theirs_expired after.
  place(host, "1", lt::now_seconds() + 100);
  EXPECT_EQ(lock.state(), LinkState::unknown);
  place(host, "1", lt::now_seconds() - 100);
  EXPECT_EQ(lock.state(), LinkState::theirs_expired);
  // Another host, or content that is no claim: unknown.
  place("elsewhere.example", std::to_string(::getpid()), lt::now_seconds() + 100);
  EXPECT_EQ(lock.state(), LinkState::unknown);
  write_file(path, "not a claim");
  EXPECT_EQ(lock.state(), LinkState::unknown);
  EXPECT_EQ(locksmith::to_string(LinkState::theirs_expired), "theirs_expired");
}

TEST(LinkLockUnit, ForeignFileIsNeverBroken) {
  TempDir dir;
  const fs::path path = dir / "res.lock";
  const std::string content = "precious data, not a claim\n";
  write_file(path, content);
  const long long old = lt::now_seconds() - 1000;
  ASSERT_TRUE(lt::set_mtime(path, old));
  LinkLockOptions opts;
  opts.clock_slop = 0s;
  LinkLock lock(path, opts);
  const auto t0 = Clock::now();
  EXPECT_FALSE(lock.try_lock_for(300ms));
  EXPECT_GE(Clock::now() - t0, 300ms);
  EXPECT_FALSE(lock.try_lock());
  EXPECT_EQ(lt::read_file(path), content);
  EXPECT_EQ(lt::stat_of(path).st_mtim.tv_sec, old);
  // Five fields are not a claim either.
  write_file(path, "a|b|1|2|3");
  ASSERT_TRUE(lt::set_mtime(path, old));
  EXPECT_FALSE(lock.try_lock_for(100ms));
  EXPECT_EQ(lt::read_file(path), "a|b|1|2|3");
  EXPECT_FALSE(lock.details().has_value());
}

TEST(LinkLockUnit, ExpiredClaimIsBrokenAndWinnerClaimRemoved) {
  TempDir dir;
  const fs::path path = dir / "res.lock";
  // A dead holder: its claim file linked to the lock path, expired long ago.
  const std::string winner = path.string() + "|" + "ghost.example|12345|777";
  write_file(winner, winner);
  ASSERT_EQ(::link(winner.c_str(), path.c_str()), 0);
  ASSERT_TRUE(lt::set_mtime(path, lt::now_seconds() - 1000));
  LinkLock lock(path);  // default clock slop: 10 s, long past
  ASSERT_TRUE(lock.try_lock());
  EXPECT_EQ(lt::read_file(path), lock.claim_path());
  EXPECT_FALSE(fs::exists(winner));
  lock.unlock();
}

// A lock path containing the separator: the claim still parses (from the right), so details()
// work and an expired one is broken; a foreign file with as many fields is still left alone.
TEST(LinkLockUnit, ExpiredClaimAtPathWithSeparatorIsBroken) {
  TempDir dir;
  fs::create_directory(dir / "x|y");
  const fs::path path = dir / "x|y" / "a|b.lock";
  const std::string winner = path.string() + "|ghost.example|12345|777";
  write_file(winner, winner);
  ASSERT_EQ(::link(winner.c_str(), path.c_str()), 0);
  LinkLock lock(path);
  const auto d = lock.details();
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(*d, (LinkDetails{"ghost.example", 12345, path.string()}));
  EXPECT_FALSE(lock.try_lock());  // not expired yet
  ASSERT_TRUE(lt::set_mtime(path, lt::now_seconds() - 1000));
  ASSERT_TRUE(lock.try_lock());
  EXPECT_EQ(lt::read_file(path), lock.claim_path());
  EXPECT_FALSE(fs::exists(winner));
  lock.unlock();
  // Six fields naming another lock file are foreign content.
  write_file(path, "/elsewhere/other|x.lock|ghost.example|1|2");
  ASSERT_TRUE(lt::set_mtime(path, lt::now_seconds() - 1000));
  EXPECT_FALSE(lock.try_lock());
  EXPECT_FALSE(lock.details().has_value());
  EXPECT_EQ(lock.state(), LinkState::unknown);
}

TEST(LinkLockUnit, FreshOrWithinSlopClaimIsNotBroken) {
  TempDir dir;
  const fs::path path = dir / "res.lock";
  const std::string winner = path.string() + "|ghost.example|12345|777";
  write_file(winner, winner);
  ASSERT_EQ(::link(winner.c_str(), path.c_str()), 0);
  // Expired 3 s ago, but within the 10 s slop.
  ASSERT_TRUE(lt::set_mtime(path, lt::now_seconds() - 3));
  LinkLock lock(path);
  EXPECT_FALSE(lock.try_lock_for(100ms));
  EXPECT_EQ(lt::read_file(path), winner);
  EXPECT_TRUE(fs::exists(winner));
}

TEST(LinkLockUnit, ClaimWithUnparsablePid) {
  TempDir dir;
  const fs::path path = dir / "res.lock";
  const std::string bad = path.string() + "|ghost.example|notapid|777";
  write_file(path, bad);
  ASSERT_TRUE(lt::set_mtime(path, lt::now_seconds() + 100));
  LinkLock lock(path);
  EXPECT_FALSE(lock.details().has_value());  // flufl: no details
  EXPECT_EQ(lock.state(), LinkState::unknown);
  EXPECT_FALSE(lock.try_lock());  // fresh: not broken
  // Four fields: a claim as far as breaking goes, once expired.
  ASSERT_TRUE(lt::set_mtime(path, lt::now_seconds() - 1000));
  ASSERT_TRUE(lock.try_lock());
  EXPECT_EQ(lt::read_file(path), lock.claim_path());
  lock.unlock();
}

TEST(LinkLockUnit, MissingDirectoryIsAClearError) {
  TempDir dir;
  const fs::path path = dir / "no" / "such" / "res.lock";
  LinkLock lock(path);
  const std::error_code ec = lock.acquire(LockMode::exclusive, Clock::time_point::min());
  EXPECT_EQ(ec, std::errc::no_such_file_or_directory);
  try {
    lock.lock();
    FAIL() << "lock() did not throw";
  } catch (const locksmith::LockError& e) {
    EXPECT_EQ(e.code(), std::errc::no_such_file_or_directory);
    EXPECT_NE(std::string(e.what()).find(path.string()), std::string::npos) << e.what();
    EXPECT_FALSE(dynamic_cast<const locksmith::AlreadyLocked*>(&e));
  }
  EXPECT_FALSE(lock.owns_lock());
}

TEST(LinkLockUnit, ReadOnlyDirectoryIsAnError) {
  TempDir dir;
  const fs::path sub = dir / "ro";
  fs::create_directory(sub);
  const fs::path path = sub / "res.lock";
  if (::geteuid() != 0) {
    fs::permissions(sub, fs::perms::owner_read | fs::perms::owner_exec);
    LinkLock lock(path);
    const auto ec = lock.acquire(LockMode::exclusive, Clock::time_point::min());
    fs::permissions(sub, fs::perms::owner_all);
    EXPECT_EQ(ec, std::errc::permission_denied);
    EXPECT_TRUE(fs::is_empty(sub));
    return;
  }
  // root ignores permissions: a read-only bind mount in a private mount namespace of a child.
  Subprocess child;
  ASSERT_NO_THROW(child = Subprocess::fork([&](Channel&) {
                    if (::unshare(CLONE_NEWNS) != 0) return 77;
                    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
                      return 77;
                    if (::mount(sub.c_str(), sub.c_str(), nullptr, MS_BIND, nullptr) != 0)
                      return 77;
                    if (::mount(nullptr, sub.c_str(), nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY,
                                nullptr) != 0) {
                      return 77;
                    }
                    LinkLock lock(path);
                    const auto ec = lock.acquire(LockMode::exclusive, Clock::time_point::min());
                    return ec == std::errc::read_only_file_system ? 0 : 1;
                  }));
  const auto status = child.wait_exit();
  ASSERT_TRUE(status.has_value());
  ASSERT_GE(*status, 0);
  if (*status == 77) {
    GTEST_SKIP() << "cannot make a read-only bind mount (unshare/mount refused) as root";
  }
  EXPECT_EQ(*status, 0) << "acquire in a read-only directory did not fail with EROFS";
  EXPECT_TRUE(fs::is_empty(sub));
}

// A lock path that is not (and cannot become) a regular lock file: the OS-level reason at once,
// never "locked by someone else" (which waited forever), and no claim left behind.
TEST(LinkLockUnit, NonRegularLockPathIsAnErrorAtOnce) {
  TempDir dir;
  fs::create_directory(dir / "a_dir");
  ASSERT_EQ(::mkfifo((dir / "a_fifo").c_str(), 0600), 0);
  write_file(dir / "target", "x");
  fs::create_symlink(dir / "target", dir / "a_link");
  fs::create_symlink(dir / "missing", dir / "dangling");
  const struct {
    fs::path path;
    std::error_code want;
  } cases[] = {
      {dir / "a_dir", std::make_error_code(std::errc::is_a_directory)},
      {dir / "a_fifo", make_error_code(errc::not_regular_file)},
      {"/dev/null", make_error_code(errc::not_regular_file)},
      {dir / "a_link", make_error_code(errc::symlink_refused)},
      {dir / "dangling", make_error_code(errc::symlink_refused)},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.path.string());
    LinkLockOptions opts;
    opts.timeout = 2s;  // lock() waited forever here: bound it
    LinkLock lock(c.path, opts);
    const auto t0 = Clock::now();
    EXPECT_EQ(lock.acquire(LockMode::exclusive, Clock::now() + 3s), c.want);
    EXPECT_LT(Clock::now() - t0, 1s);
    EXPECT_EQ(lock.acquire(LockMode::exclusive, Clock::time_point::min()), c.want);
    EXPECT_FALSE(lock.owns_lock());
    try {
      lock.lock();
      ADD_FAILURE() << "lock() did not throw";
    } catch (const locksmith::LockError& e) {
      EXPECT_EQ(e.code(), c.want);
      EXPECT_FALSE(dynamic_cast<const locksmith::AlreadyLocked*>(&e));
      EXPECT_NE(std::string(e.what()).find(c.path.string()), std::string::npos) << e.what();
    }
    EXPECT_TRUE(lt::claim_files(c.path.parent_path(), c.path.filename().string()).empty());
  }
  EXPECT_TRUE(fs::is_fifo(dir / "a_fifo"));
  EXPECT_EQ(lt::read_file(dir / "target"), "x");
}

// A claim whose write fails is removed, not left empty: EFBIG from RLIMIT_FSIZE (any user), and
// ENOSPC from a full tmpfs mounted in a private mount namespace (root only).
TEST(LinkLockUnit, FailedClaimWriteLeavesNothing) {
  TempDir dir;
  const fs::path path = dir / "res.lock";
  Subprocess child;
  ASSERT_NO_THROW(child = Subprocess::fork([&](Channel& parent) {
                    ::signal(SIGXFSZ, SIG_IGN);
                    struct rlimit rl {};
                    rl.rlim_cur = 0;
                    rl.rlim_max = RLIM_INFINITY;
                    if (::setrlimit(RLIMIT_FSIZE, &rl) != 0) return 3;
                    LinkLock lock(path);
                    const auto ec = lock.acquire(LockMode::exclusive, Clock::time_point::min());
                    parent.send(ec.message());
                    return ec == std::errc::file_too_large ? 0 : 1;
                  }));
  EXPECT_EQ(child.read_line().value_or(""),
            std::make_error_code(std::errc::file_too_large).message());
  const auto st = child.wait_exit();
  ASSERT_TRUE(st.has_value());
  EXPECT_TRUE(*st == 0);
  EXPECT_TRUE(fs::is_empty(dir.path()));

  if (::geteuid() != 0) GTEST_SKIP() << "ENOSPC case needs root (mount -t tmpfs)";
  const fs::path mnt = dir / "full";
  fs::create_directory(mnt);
  Subprocess full;
  ASSERT_NO_THROW(full = Subprocess::fork([&](Channel& parent) {
                    if (::unshare(CLONE_NEWNS) != 0) return 77;
                    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
                      return 77;
                    if (::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=64k") != 0) return 77;
                    int rc = 1;
                    {
                      // Fill it: a claim's open() still finds an inode, its write() then gets
                      // ENOSPC.
                      std::ofstream filler(mnt / "filler", std::ios::binary);
                      const std::string block(4096, 'x');
                      for (int i = 0; i < 64 && filler; ++i) filler << block << std::flush;
                    }
                    LinkLock lock(mnt / "res.lock");
                    const auto ec = lock.acquire(LockMode::exclusive, Clock::time_point::min());
                    std::string left;
                    for (const auto& e : fs::directory_iterator(mnt)) {
                      if (e.path().filename() != "filler")
                        left += " " + e.path().filename().string();
                    }
                    parent.send(ec.message() + " |" + left);
                    if (ec == std::errc::no_space_on_device && left.empty()) rc = 0;
                    ::umount2(mnt.c_str(), 0);
                    return rc;
                  }));
  const std::string line = full.read_line().value_or("(no answer)");
  const auto fst = full.wait_exit();
  ASSERT_TRUE(fst.has_value() && *fst >= 0);
  if (*fst == 77) GTEST_SKIP() << "cannot mount a tmpfs in a private namespace";
  EXPECT_EQ(*fst, 0) << line;
  EXPECT_EQ(line, std::make_error_code(std::errc::no_space_on_device).message() + " |");
}

TEST(LinkLockUnit, StdLockableFamily) {
  TempDir dir;
  const fs::path path = dir / "res.lock";
  LinkLock a(path);
  LinkLock b(path);
  {
    std::unique_lock<LinkLock> guard(a);
    EXPECT_TRUE(guard.owns_lock());
    EXPECT_FALSE(b.try_lock());
    std::unique_lock<LinkLock> other(b, std::defer_lock);
    const auto t0 = Clock::now();
    EXPECT_FALSE(other.try_lock_for(50ms));
    EXPECT_GE(Clock::now() - t0, 50ms);
    EXPECT_FALSE(other.try_lock_until(Clock::now() + 20ms));
  }
  EXPECT_FALSE(fs::exists(path));
  {
    std::scoped_lock guard(b);
    EXPECT_TRUE(b.owns_lock());
  }
  EXPECT_FALSE(b.owns_lock());
  // Shared mode is not offered.
  EXPECT_FALSE(a.supports_shared());
  EXPECT_EQ(a.acquire(LockMode::shared, Clock::time_point::min()),
            make_error_code(errc::unsupported));
  EXPECT_THROW(a.lock_shared(), locksmith::LockError);
  // Re-acquiring while held (flufl's AlreadyLockedError).
  a.lock();
  EXPECT_EQ(a.acquire(LockMode::exclusive, Clock::time_point::min()),
            std::errc::resource_deadlock_would_occur);
  a.unlock();
  EXPECT_THROW(a.unlock(), locksmith::NotLocked);
}

TEST(LinkLockUnit, LockHonoursConfiguredWaitPolicy) {
  TempDir dir;
  const fs::path path = dir / "res.lock";
  LinkLock holder(path);
  holder.lock();
  LinkLockOptions fwl;
  fwl.fail_when_locked = true;
  LinkLock a(path, fwl);
  EXPECT_THROW(a.lock(), locksmith::AlreadyLocked);
  LinkLockOptions timed;
  timed.timeout = 100ms;
  LinkLock b(path, timed);
  const auto t0 = Clock::now();
  EXPECT_THROW(b.lock(), locksmith::LockTimeout);
  EXPECT_GE(Clock::now() - t0, 100ms);
}

TEST(LinkLockUnit, ClaimIsKeptBetweenAcquisitionsAndRemovedAtDestruction) {
  TempDir dir;
  const fs::path path = dir / "res.lock";
  std::string claim;
  {
    LinkLock lock(path);
    lock.lock();
    claim = lock.claim_path();
    lock.unlock();
    EXPECT_TRUE(fs::exists(claim));
    EXPECT_EQ(lt::stat_of(claim).st_nlink, 1u);
    lock.lock();
    EXPECT_EQ(lock.claim_path(), claim);
    // Destroyed while held: releases and removes the claim.
  }
  EXPECT_FALSE(fs::exists(path));
  EXPECT_FALSE(fs::exists(claim));
  EXPECT_TRUE(fs::is_empty(dir.path()));
  LinkLockOptions flufl_like;
  flufl_like.keep_claim = false;
  LinkLock lock(path, flufl_like);
  lock.lock();
  claim = lock.claim_path();
  lock.unlock();
  EXPECT_FALSE(fs::exists(claim));
  EXPECT_TRUE(fs::is_empty(dir.path()));
}

TEST(LinkLockUnit, RemovedClaimIsRewritten) {
  TempDir dir;
  const fs::path path = dir / "res.lock";
  LinkLock lock(path);
  lock.lock();
  lock.unlock();
  ASSERT_TRUE(fs::remove(lock.claim_path()));
  ASSERT_TRUE(lock.try_lock());
  EXPECT_EQ(lt::read_file(path), lock.claim_path());
  EXPECT_EQ(lt::stat_of(path).st_nlink, 2u);
  EXPECT_TRUE(lock.is_locked());
  lock.unlock();
}

TEST(LinkLockUnit, BrokenLockIsReportedAndTheNewHolderKept) {
  TempDir dir;
  const fs::path path = dir / "res.lock";
  LinkLockOptions opts;
  opts.clock_slop = 0s;
  LinkLock old_holder(path, opts);
  old_holder.lock();
  ASSERT_TRUE(lt::set_mtime(path, lt::now_seconds() - 100));
  LinkLock breaker(path, opts);
  ASSERT_TRUE(breaker.try_lock());
  EXPECT_FALSE(fs::exists(old_holder.claim_path()));  // the winner's claim was removed
  EXPECT_FALSE(old_holder.is_locked());
  EXPECT_EQ(old_holder.refresh(), make_error_code(errc::not_locked));
  EXPECT_EQ(old_holder.release(), make_error_code(errc::lock_lost));
  EXPECT_EQ(lt::read_file(path), breaker.claim_path());
  EXPECT_TRUE(breaker.is_locked());
  // The old holder can take it again later, with a rewritten claim.
  breaker.unlock();
  ASSERT_TRUE(old_holder.try_lock());
  EXPECT_EQ(lt::read_file(path), old_holder.claim_path());
  old_holder.unlock();
}

TEST(LinkLockUnit, ParseClaim) {
  const auto c = locksmith::parse_link_claim(" /x/y.lock|h.example|12|34\n");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->lockfile, "/x/y.lock");
  EXPECT_EQ(c->hostname, "h.example");
  EXPECT_EQ(c->pid, "12");
  EXPECT_EQ(c->random, "34");
  EXPECT_FALSE(locksmith::parse_link_claim("a|b|c").has_value());
  // From the right: the lock file path keeps its separators, host|pid|random are the last three.
  const auto bar = locksmith::parse_link_claim("/x|y/a|b.lock|h.example|12|34");
  ASSERT_TRUE(bar.has_value());
  EXPECT_EQ(bar->lockfile, "/x|y/a|b.lock");
  EXPECT_EQ(bar->hostname, "h.example");
  EXPECT_EQ(bar->pid, "12");
  EXPECT_EQ(bar->random, "34");
  EXPECT_FALSE(locksmith::parse_link_claim("").has_value());
  EXPECT_TRUE(locksmith::parse_link_claim("a^b^c^d", '^').has_value());
}

// A waiter in another thread wakes when the holder releases, with either wait strategy.
void waiter_wakes(LinkWait wait) {
  TempDir dir;
  const fs::path path = dir / "res.lock";
  LinkLock holder(path);
  holder.lock();
  LinkLockOptions opts;
  opts.wait = wait;
  LinkLock waiter(path, opts);
  std::atomic<int> result{-1};
  std::atomic<bool> started{false};
  std::thread t([&] {
    started = true;
    result = waiter.try_lock_for(10s) ? 1 : 0;
  });
  while (!started) std::this_thread::yield();
  std::this_thread::sleep_for(50ms);  // let it block (not a synchronisation: either order works)
  EXPECT_EQ(result.load(), -1);
  holder.unlock();
  t.join();
  EXPECT_EQ(result.load(), 1);
  EXPECT_TRUE(waiter.is_locked());
  waiter.unlock();
}

TEST(LinkLockUnit, NotifiedWaiterWakesOnRelease) { waiter_wakes(LinkWait::notify); }
TEST(LinkLockUnit, BackoffWaiterWakesOnRelease) { waiter_wakes(LinkWait::backoff); }

TEST(LinkLockUnit, WaiterBreaksWhenTheLockExpiresWhileWaiting) {
  TempDir dir;
  const fs::path path = dir / "res.lock";
  LinkLockOptions opts;
  opts.lifetime = 1s;
  opts.clock_slop = 0s;
  LinkLock holder(path, opts);
  holder.lock();
  const auto expiry = lt::stat_of(path).st_mtim.tv_sec;
  LinkLock waiter(path, opts);
  ASSERT_TRUE(waiter.try_lock_for(5s));
  // Broken only after expiry + slop.
  EXPECT_GT(std::chrono::system_clock::now(),
            std::chrono::system_clock::time_point(std::chrono::seconds(expiry)));
  EXPECT_EQ(holder.release(), make_error_code(errc::lock_lost));
  waiter.unlock();
}

// Names in `dir` starting with "<lockname>.break" (the break lock and moved-aside files).
std::vector<std::string> break_files(const fs::path& dir, const std::string& lockname) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(lockname + ".break", 0) == 0) out.push_back(name);
  }
  return out;
}

// A dead holder's expired lock is broken, and breaking leaves no break lock or aside file.
TEST(LinkLockUnit, BreakingLeavesNoBreakFiles) {
  TempDir dir;
  const fs::path path = dir / "res.lock";
  const std::string dead = path.string() + "|" + locksmith::link_lock_hostname() + "|999999999|42";
  write_file(dead, dead);
  ASSERT_EQ(::link(dead.c_str(), path.c_str()), 0);
  ASSERT_TRUE(lt::set_mtime(path, lt::now_seconds() - 100));
  LinkLockOptions opts;
  opts.clock_slop = 0ms;
  LinkLock lock(path, opts);
  ASSERT_TRUE(lock.try_lock());
  EXPECT_EQ(lt::read_file(path), lock.claim_path());
  EXPECT_FALSE(fs::exists(dead));
  EXPECT_TRUE(break_files(dir.path(), "res.lock").empty());
  lock.unlock();
}

// A break lock left by a breaker that crashed while holding it defers breaking until it is
// 1 s + clock_slop old (by its ctime), then it is removed and the dead lock broken.
TEST(LinkLockUnit, BreakLockOfACrashedBreakerGoesStale) {
  TempDir dir;
  const fs::path path = dir / "res.lock";
  const std::string dead = path.string() + "|" + locksmith::link_lock_hostname() + "|999999999|42";
  write_file(dead, dead);
  ASSERT_EQ(::link(dead.c_str(), path.c_str()), 0);
  ASSERT_TRUE(lt::set_mtime(path, lt::now_seconds() - 100));
  const std::string crashed =
      path.string() + "|" + locksmith::link_lock_hostname() + "|999999998|43";
  write_file(crashed, crashed);
  const fs::path break_lock = dir / "res.lock.break";
  ASSERT_EQ(::link(crashed.c_str(), break_lock.c_str()), 0);
  const auto t0 = Clock::now();
  LinkLockOptions opts;
  opts.clock_slop = 0ms;
  LinkLock lock(path, opts);
  EXPECT_FALSE(lock.try_lock());  // the break lock is fresh: not broken yet
  ASSERT_TRUE(lock.try_lock_for(5s));
  EXPECT_GE(Clock::now() - t0, 900ms);
  EXPECT_EQ(lt::read_file(path), lock.claim_path());
  EXPECT_TRUE(break_files(dir.path(), "res.lock").empty());
  lock.unlock();
}

// A waiter that waited longer than its lifetime takes the lock with a fresh expiry, not the one
// it wrote when it started waiting (such a lock would be broken at once by the next waiter).
TEST(LinkLockUnit, LockTakenAfterALongWaitIsNotExpired) {
  TempDir dir;
  const fs::path path = dir / "res.lock";
  LinkLock holder(path);
  holder.lock();
  LinkLockOptions opts;
  opts.lifetime = 200ms;
  LinkLock waiter(path, opts);
  std::thread releaser([&] {
    std::this_thread::sleep_for(500ms);
    holder.unlock();
  });
  const bool got = waiter.try_lock_for(5s);
  releaser.join();
  ASSERT_TRUE(got);
  const std::int64_t now = now_ns();
  EXPECT_GT(ns_of(lt::stat_of(path).st_mtim), now);
  EXPECT_GT(waiter.valid_until(), Clock::now());
  waiter.unlock();
}

TEST(LinkLockUnit, StateNamesAreFluflsLockStateNames) {
  EXPECT_EQ(to_string(LinkState::unlocked), "unlocked");
  EXPECT_EQ(to_string(LinkState::ours), "ours");
  EXPECT_EQ(to_string(LinkState::ours_expired), "ours_expired");
  EXPECT_EQ(to_string(LinkState::stale), "stale");
  EXPECT_EQ(to_string(LinkState::theirs_expired), "theirs_expired");
  EXPECT_EQ(to_string(LinkState::unknown), "unknown");
}

// set_stop_token: a waiting acquire() stopped from another thread returns errc::cancelled at
// once with either wait strategy; without keep_claim its claim is gone then, with it (the
// default) the claim goes with the object.
void stop_ends_wait(LinkWait wait, bool keep_claim) {
  TempDir dir;
  const fs::path path = dir / "res.lock";
  LinkLock holder(path);
  holder.lock();
  LinkLockOptions opts;
  opts.wait = wait;
  opts.keep_claim = keep_claim;
  auto waiter = std::make_unique<LinkLock>(path, opts);
  std::stop_source stop;
  ASSERT_TRUE(waiter->set_stop_token(stop.get_token()));
  std::error_code ec;
  std::thread t([&] { ec = waiter->acquire(LockMode::exclusive, Clock::now() + 20s); });
  // Waiting once its claim exists (and then some: not a synchronisation, either order works).
  const auto until = Clock::now() + 10s;
  while (lt::claim_files(dir.path(), "res.lock").size() < 2 && Clock::now() < until) {
    std::this_thread::sleep_for(1ms);
  }
  std::this_thread::sleep_for(50ms);
  const auto t0 = Clock::now();
  stop.request_stop();
  t.join();
  EXPECT_LT(Clock::now() - t0, 500ms);
  EXPECT_EQ(ec, make_error_code(errc::cancelled));
  EXPECT_FALSE(waiter->owns_lock());
  EXPECT_EQ(lt::claim_files(dir.path(), "res.lock").size(), keep_claim ? 2u : 1u);
  waiter.reset();
  EXPECT_EQ(lt::claim_files(dir.path(), "res.lock").size(), 1u);  // the holder's
  EXPECT_TRUE(holder.is_locked());
  // Stopped before it starts: cancelled at once, even when the lock is free.
  holder.unlock();
  LinkLock late(path);
  ASSERT_TRUE(late.set_stop_token(stop.get_token()));
  EXPECT_EQ(late.acquire(LockMode::exclusive, Clock::now() + 20s),
            make_error_code(errc::cancelled));
  EXPECT_FALSE(fs::exists(path));
}

TEST(LinkLockUnit, StopEndsANotifiedWait) { stop_ends_wait(LinkWait::notify, true); }
TEST(LinkLockUnit, StopEndsABackoffWait) { stop_ends_wait(LinkWait::backoff, false); }

}  // namespace
