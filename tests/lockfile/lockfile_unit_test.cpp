// Unit tests: names and bytes of MkdirLock / PidLockFile / DotLock (compared with what
// python3-lockfile produces), busy / timeout / ownership / error paths, DotLock's stale rule.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <map>
#include <regex>
#include <sstream>
#include <stop_token>
#include <thread>

#include "lf_util.hpp"
#include "locksmith/lockfile_locks.hpp"
#include "test_support.hpp"

namespace {

using namespace std::chrono_literals;
using locksmith::Clock;
using locksmith::DotLock;
using locksmith::DotLockOptions;
using locksmith::errc;
using locksmith::LockMode;
using locksmith::MkdirLock;
using locksmith::MkdirLockOptions;
using locksmith::PidLockFile;
using locksmith::PidLockFileOptions;
using locksmith::test::TempDir;
namespace fs = std::filesystem;

std::map<std::string, std::string> python_names(const fs::path& path) {
  auto [code, out] = lftest::run({LF_PYTHON, LF_PEER, "names", path.string()});
  EXPECT_EQ(code, 0) << out;
  std::map<std::string, std::string> names;
  std::istringstream in(out);
  std::string key, value;
  while (in >> key && std::getline(in >> std::ws, value)) names[key] = value;
  return names;
}

std::string hostname() {
  char buf[256] = {};
  ::gethostname(buf, sizeof buf - 1);
  return buf;
}

mode_t file_mode(const fs::path& p) {
  struct stat st {};
  EXPECT_EQ(::lstat(p.c_str(), &st), 0) << p;
  return st.st_mode;
}

// Runs `fn` as an unprivileged user when we are root (root ignores directory permissions), and
// returns its error code value and message.
std::pair<int, std::string> run_unprivileged(const fs::path& dir,
                                             const std::function<std::error_code()>& fn) {
  if (::geteuid() != 0) {
    const auto ec = fn();
    return {ec.value(), ec.message()};
  }
  fs::permissions(dir.parent_path(), fs::perms::owner_all | fs::perms::others_exec);
  lftest::Child c = lftest::Child::fork([&] {
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) return 3;
    const auto ec = fn();
    std::printf("%d\n", ec.value());
    return 0;
  });
  const auto line = c.read_line();
  EXPECT_EQ(c.wait(), 0);
  return {line ? std::stoi(*line) : -1, ""};
}

// --- MkdirLock -----------------------------------------------------------------------------------

TEST(MkdirLock, NamesMatchPythonLockfile) {
  TempDir dir;
  const fs::path path = dir / "data";
  const auto py = python_names(path);
  // lockfile's formula, checked on lockfile's own output.
  ASSERT_EQ(py.at("tname"), "-" + py.at("ident"));
  ASSERT_EQ(py.at("unique"), py.at("hostname") + "." + py.at("tname") + py.at("pid"));
  ASSERT_EQ(py.at("unique_unthreaded"), py.at("hostname") + "." + py.at("pid"));

  MkdirLock lock(path);
  EXPECT_EQ(lock.lock_path().string(), py.at("lock_file"));
  EXPECT_EQ(py.at("hostname"), hostname());
  const std::string pid = std::to_string(::getpid());
  const std::string name = lock.unique_path().filename().string();
  EXPECT_TRUE(std::regex_match(name, std::regex(hostname() + "\\.-[0-9a-f]{1,8}" + pid))) << name;
  MkdirLockOptions unthreaded;
  unthreaded.threaded = false;
  EXPECT_EQ(MkdirLock(path, unthreaded).unique_path().filename().string(), hostname() + "." + pid);
  // abspath(): relative and un-normalised paths give the same lock directory as lockfile.
  const fs::path messy = dir.path() / "sub" / ".." / "data";
  EXPECT_EQ(MkdirLock(messy).lock_path().string(), python_names(messy).at("lock_file"));
}

TEST(MkdirLock, CreatesDirectoryWithOneEmptyFileLikeLockfile) {
  TempDir dir;
  // What lockfile leaves on disk (it exits holding the lock).
  auto [code, out] =
      lftest::run({LF_PYTHON, LF_PEER, "mkdir", (dir / "py").string(), "0", "--keep"});
  ASSERT_EQ(code, 0);
  ASSERT_EQ(out.rfind("locked ", 0), 0u) << out;
  const std::string py_unique = out.substr(7, out.size() - 8);
  ASSERT_TRUE(S_ISDIR(file_mode(dir / "py.lock")));
  EXPECT_EQ(lftest::list_dir(dir / "py.lock"), std::vector<std::string>{py_unique});
  EXPECT_EQ(fs::file_size(dir / "py.lock" / py_unique), 0u);

  MkdirLock lock(dir / "cc");
  ASSERT_TRUE(lock.try_lock());
  ASSERT_TRUE(S_ISDIR(file_mode(dir / "cc.lock")));
  EXPECT_EQ(file_mode(dir / "cc.lock") & 07777, file_mode(dir / "py.lock") & 07777);
  const std::string ours = lock.unique_path().filename().string();
  EXPECT_EQ(lftest::list_dir(dir / "cc.lock"), std::vector<std::string>{ours});
  EXPECT_TRUE(S_ISREG(file_mode(dir / "cc.lock" / ours)));
  EXPECT_EQ(fs::file_size(dir / "cc.lock" / ours), 0u);
  EXPECT_EQ(file_mode(dir / "cc.lock" / ours) & 07777,
            file_mode(dir / "py.lock" / py_unique) & 07777);
  EXPECT_EQ(lock.describe().token, ours);
  lock.unlock();
  EXPECT_FALSE(fs::exists(dir / "cc.lock"));
  EXPECT_TRUE(fs::exists(dir / "py.lock"));  // lockfile has no stale rule; neither have we
  MkdirLock other(dir / "py");
  EXPECT_FALSE(other.try_lock());
}

// --- shared conformance for the three kinds ------------------------------------------------------

template <class L>
struct Kind;
template <>
struct Kind<MkdirLock> {
  static fs::path lock_path(const MkdirLock& l) { return l.lock_path(); }
};
template <>
struct Kind<PidLockFile> {
  static fs::path lock_path(const PidLockFile& l) { return l.path(); }
};
template <>
struct Kind<DotLock> {
  static fs::path lock_path(const DotLock& l) { return l.lock_path(); }
};

template <class L>
class LockfileConformance : public ::testing::Test {};
using Kinds = ::testing::Types<MkdirLock, PidLockFile, DotLock>;
TYPED_TEST_SUITE(LockfileConformance, Kinds);

TYPED_TEST(LockfileConformance, ExcludesAndReleases) {
  TempDir dir;
  TypeParam a(dir / "f"), b(dir / "f");
  EXPECT_FALSE(a.supports_shared());
  ASSERT_TRUE(a.try_lock());
  EXPECT_TRUE(a.owns_lock());
  EXPECT_TRUE(a.describe().held);
  EXPECT_TRUE(a.is_locked());
  EXPECT_TRUE(fs::exists(Kind<TypeParam>::lock_path(a)));
  EXPECT_FALSE(b.try_lock());
  EXPECT_EQ(b.acquire(LockMode::exclusive, Clock::time_point::min()), errc::busy);
  EXPECT_EQ(a.acquire(LockMode::exclusive, Clock::time_point::min()),
            std::errc::resource_deadlock_would_occur);
  a.unlock();
  EXPECT_FALSE(a.owns_lock());
  EXPECT_FALSE(fs::exists(Kind<TypeParam>::lock_path(a)));
  ASSERT_TRUE(b.try_lock());
  b.unlock();
  // Nothing but the data file's siblings we made is left: no temporary files.
  EXPECT_TRUE(lftest::list_dir(dir.path()).empty());
}

TYPED_TEST(LockfileConformance, TimedWaitTimesOutAfterItsTimeout) {
  TempDir dir;
  TypeParam a(dir / "f"), b(dir / "f");
  ASSERT_TRUE(a.try_lock());
  const auto start = Clock::now();
  EXPECT_FALSE(b.try_lock_for(150ms));
  const auto waited = Clock::now() - start;
  EXPECT_GE(waited, 150ms);
  EXPECT_LT(waited, 10s);
  EXPECT_EQ(b.acquire(LockMode::exclusive, Clock::now() + 50ms), errc::timeout);
  EXPECT_EQ(b.acquire(LockMode::shared, Clock::now() + 50ms), errc::unsupported);
}

TYPED_TEST(LockfileConformance, WaiterGetsLockReleasedByAnotherThread) {
  TempDir dir;
  TypeParam a(dir / "f"), b(dir / "f");
  ASSERT_TRUE(a.try_lock());
  ASSERT_FALSE(b.try_lock());  // held: the waiter below starts against a taken lock
  std::thread t([&] { a.unlock(); });
  EXPECT_TRUE(b.try_lock_for(lftest::kWait));
  t.join();
  b.unlock();
}

TYPED_TEST(LockfileConformance, ReleaseByNonOwnerIsRefused) {
  TempDir dir;
  TypeParam a(dir / "f"), b(dir / "f");
  EXPECT_EQ(b.release(), errc::not_locked);
  ASSERT_TRUE(a.try_lock());
  EXPECT_EQ(b.release(), errc::not_locked);
  EXPECT_THROW(b.unlock(), locksmith::NotLocked);
  EXPECT_TRUE(fs::exists(Kind<TypeParam>::lock_path(a)));  // untouched
  a.unlock();
  EXPECT_THROW(a.unlock(), locksmith::NotLocked);
}

TYPED_TEST(LockfileConformance, ForkedChildDoesNotReleaseParentsLock) {
  TempDir dir;
  TypeParam a(dir / "f");
  ASSERT_TRUE(a.try_lock());
  lftest::Child c = lftest::Child::fork([&] {
    return a.release() == errc::not_locked ? 0 : 1;  // and the destructor at exit does nothing
  });
  EXPECT_EQ(c.wait(), 0);
  EXPECT_TRUE(fs::exists(Kind<TypeParam>::lock_path(a)));
  a.unlock();
}

TYPED_TEST(LockfileConformance, MissingDirectoryNamesThePath) {
  TempDir dir;
  TypeParam a(dir / "nope" / "f");
  EXPECT_EQ(a.acquire(LockMode::exclusive, Clock::time_point::min()),
            std::errc::no_such_file_or_directory);
  try {
    a.lock();
    FAIL() << "lock() did not throw";
  } catch (const locksmith::LockError& e) {
    EXPECT_EQ(e.code(), std::errc::no_such_file_or_directory);
    EXPECT_NE(std::string(e.what()).find((dir / "nope").string()), std::string::npos) << e.what();
  }
}

TYPED_TEST(LockfileConformance, ReadOnlyDirectoryIsPermissionDenied) {
  TempDir dir;
  const fs::path ro = dir / "ro";
  fs::create_directory(ro);
  fs::permissions(ro, fs::perms::owner_read | fs::perms::owner_exec | fs::perms::group_read |
                          fs::perms::group_exec | fs::perms::others_read | fs::perms::others_exec);
  auto [value, message] = run_unprivileged(ro, [&] {
    TypeParam a(ro / "f");
    return a.acquire(LockMode::exclusive, Clock::time_point::min());
  });
  EXPECT_EQ(value, EACCES) << message;
  EXPECT_TRUE(lftest::list_dir(ro).empty());
}

// --- kind-specific -------------------------------------------------------------------------------

TEST(MkdirLock, ForeignFileAtLockPathIsAnError) {
  TempDir dir;
  lftest::write_file(dir / "f.lock", "junk");
  MkdirLock a(dir / "f");
  EXPECT_EQ(a.acquire(LockMode::exclusive, Clock::now() + 10s), std::errc::not_a_directory);
  EXPECT_EQ(lftest::read_file(dir / "f.lock"), "junk");
}

TEST(MkdirLock, BrokenLockIsReportedLostOnRelease) {
  TempDir dir;
  MkdirLock a(dir / "f"), b(dir / "f");
  ASSERT_TRUE(a.try_lock());
  ASSERT_FALSE(b.try_lock());
  ASSERT_FALSE(b.break_lock());  // lockfile's break_lock: whoever holds it
  EXPECT_FALSE(fs::exists(a.lock_path()));
  ASSERT_TRUE(b.try_lock());
  EXPECT_EQ(a.release(), errc::lock_lost);
  EXPECT_TRUE(fs::exists(b.lock_path()));  // b's lock survives a's release
  b.unlock();
}

TEST(PidLockFile, ContentAndModeMatchPythonLockfile) {
  TempDir dir;
  auto [code, out] =
      lftest::run({LF_PYTHON, "-c",
                   "import os,sys\nfrom lockfile.pidlockfile import PIDLockFile\n"
                   "l=PIDLockFile(sys.argv[1]); l.acquire(timeout=0); print(os.getpid())",
                   (dir / "py.pid").string()});
  ASSERT_EQ(code, 0) << out;
  EXPECT_EQ(lftest::read_file(dir / "py.pid"), out);  // "%d\n"
  PidLockFile lock(dir / "cc.pid");
  ASSERT_TRUE(lock.try_lock());
  EXPECT_EQ(lftest::read_file(dir / "cc.pid"), std::to_string(::getpid()) + "\n");
  EXPECT_EQ(file_mode(dir / "cc.pid"), file_mode(dir / "py.pid"));
  EXPECT_EQ(lock.read_pid(), ::getpid());
  EXPECT_EQ(PidLockFile(dir / "py.pid").read_pid(), std::stol(out));
  EXPECT_EQ(lock.describe().token, std::to_string(::getpid()));
  lock.unlock();
}

TEST(PidLockFile, ReadPidIsLenientLikeLockfile) {
  TempDir dir;
  PidLockFile l(dir / "p");
  EXPECT_EQ(l.read_pid(), std::nullopt);
  const std::vector<std::pair<std::string, std::optional<long>>> cases = {{"42\n", 42},
                                                                          {"  0042  \nmore\n", 42},
                                                                          {"42", 42},
                                                                          {"abc\n", std::nullopt},
                                                                          {"\n42\n", std::nullopt},
                                                                          {"", std::nullopt},
                                                                          {"-5\n", -5}};
  for (const auto& [text, want] : cases) {
    lftest::write_file(dir / "p", text);
    EXPECT_EQ(l.read_pid(), want) << text;
    auto [code, out] = lftest::run({LF_PYTHON, "-c",
                                    "import sys\nfrom lockfile.pidlockfile import PIDLockFile\n"
                                    "print(PIDLockFile(sys.argv[1]).read_pid())",
                                    (dir / "p").string()});
    EXPECT_EQ(out, (want ? std::to_string(*want) : "None") + "\n") << text;
  }
}

TEST(PidLockFile, ReplacedFileIsNotRemovedOnRelease) {
  TempDir dir;
  PidLockFile a(dir / "p");
  ASSERT_TRUE(a.try_lock());
  lftest::write_file(dir / "p", "1\n");
  EXPECT_EQ(a.release(), errc::lock_lost);
  EXPECT_EQ(lftest::read_file(dir / "p"), "1\n");
}

TEST(PidLockFile, StalePidBrokenOnlyWhenAskedAndOnlyWhenDead) {
  TempDir dir;
  const std::string dead = std::to_string(lftest::dead_pid()) + "\n";
  lftest::write_file(dir / "p", dead);
  PidLockFile plain(dir / "p");
  EXPECT_FALSE(plain.try_lock());  // lockfile never breaks a lock
  PidLockFileOptions opts;
  opts.break_stale_pid = true;
  PidLockFile breaker(dir / "p", opts);
  for (const std::string& alive : {std::to_string(::getppid()) + "\n", std::string("junk\n"),
                                   std::string("0\n"), std::string("")}) {
    lftest::write_file(dir / "p", alive);
    EXPECT_FALSE(breaker.try_lock()) << alive;
    EXPECT_EQ(lftest::read_file(dir / "p"), alive);
  }
  lftest::write_file(dir / "p", dead);
  ASSERT_TRUE(breaker.try_lock());
  EXPECT_EQ(lftest::read_file(dir / "p"), std::to_string(::getpid()) + "\n");
  breaker.unlock();
}

TEST(PidLockFile, DirectoryAtPathIsAnError) {
  TempDir dir;
  fs::create_directory(dir / "p");
  PidLockFile a(dir / "p");
  EXPECT_EQ(a.acquire(LockMode::exclusive, Clock::now() + 10s), std::errc::is_a_directory);
  fs::create_symlink(dir / "target", dir / "s");
  PidLockFile s(dir / "s");
  EXPECT_EQ(s.acquire(LockMode::exclusive, Clock::now() + 10s), errc::symlink_refused);
  EXPECT_FALSE(fs::exists(dir / "target"));
}

TEST(DotLock, NameAndContentAreLiblockfiles) {
  TempDir dir;
  DotLock lock(dir / "mbox");
  EXPECT_EQ(lock.lock_path(), dir / "mbox.lock");
  ASSERT_TRUE(lock.try_lock());
  EXPECT_EQ(lftest::read_file(dir / "mbox.lock"), std::to_string(::getpid()) + "\n");
  EXPECT_EQ(
      file_mode(dir / "mbox.lock") & 07777, 0644 & ~[] {
        const mode_t m = ::umask(0);
        ::umask(m);
        return m;
      }());
  EXPECT_EQ(lftest::list_dir(dir.path()), std::vector<std::string>{"mbox.lock"});  // no temp left
  EXPECT_TRUE(lock.is_valid());
  lock.unlock();
  EXPECT_TRUE(lftest::list_dir(dir.path()).empty());
}

TEST(DotLock, StaleRuleIsLiblockfiles) {
  TempDir dir;
  const fs::path l = dir / "f.lock";
  const std::string dead = std::to_string(lftest::dead_pid()) + "\n";
  const std::string live = std::to_string(::getppid()) + "\n";
  struct Case {
    std::string content;
    std::chrono::seconds age;
    bool check_pid;
    bool stale;
  };
  const std::vector<Case> cases = {
      {dead, 0s, true, true},      // dead pid: stale at once
      {live, 600s, true, false},   // live pid: valid however old
      {"0\n", 0s, true, false},    // no pid (dotlockfile without -p): valid while young
      {"0\n", 299s, true, false},  //
      {"0\n", 301s, true, true},   // ... stale after 5 minutes
      {"", 301s, true, true},      // empty (lockfile's LinkLockFile): same
      {"junk", 301s, true, true},  //
      {"-1\n", 10s, true, false},  // never kill(-1, 0)
      {dead, 10s, false, false},   // check_pid off: only age counts
      {live, 301s, false, true},   //
  };
  for (const auto& c : cases) {
    lftest::write_file(l, c.content);
    lftest::age_file(l, c.age);
    DotLockOptions o;
    o.check_pid = c.check_pid;
    DotLock lock(dir / "f", o);
    EXPECT_EQ(lock.is_valid(), !c.stale) << c.content << " age " << c.age.count();
    EXPECT_EQ(lock.try_lock(), c.stale) << c.content << " age " << c.age.count();
    if (c.stale) {
      EXPECT_EQ(lftest::read_file(l), std::to_string(::getpid()) + "\n");
      lock.unlock();
    } else {
      EXPECT_EQ(lftest::read_file(l), c.content);
      fs::remove(l);
    }
  }
  // stale_age = nullopt: a lock without a pid never goes stale.
  lftest::write_file(l, "");
  lftest::age_file(l, 3600s);
  DotLockOptions never;
  never.stale_age = std::nullopt;
  EXPECT_FALSE(DotLock(dir / "f", never).try_lock());
}

TEST(DotLock, TouchRefreshesAndReplacedLockIsNotRemoved) {
  TempDir dir;
  DotLock a(dir / "f");
  EXPECT_EQ(a.touch(), errc::not_locked);
  ASSERT_TRUE(a.try_lock());
  lftest::age_file(a.lock_path(), 200s);
  ASSERT_FALSE(a.touch());
  EXPECT_LT(fs::file_time_type::clock::now() - fs::last_write_time(a.lock_path()), 100s);
  fs::remove(a.lock_path());
  lftest::write_file(a.lock_path(), "1\n");
  EXPECT_EQ(a.touch(), errc::lock_lost);
  EXPECT_EQ(a.release(), errc::lock_lost);
  EXPECT_EQ(lftest::read_file(a.lock_path()), "1\n");
}

TEST(DotLock, ForeignDirectoryAtLockPathIsAnError) {
  TempDir dir;
  fs::create_directory(dir / "f.lock");
  DotLock a(dir / "f");
  EXPECT_EQ(a.acquire(LockMode::exclusive, Clock::now() + 10s), std::errc::is_a_directory);
  EXPECT_EQ(lftest::list_dir(dir.path()), std::vector<std::string>{"f.lock"});
}

TEST(DotLock, OptionsDriveLock) {
  TempDir dir;
  DotLock holder(dir / "f");
  ASSERT_TRUE(holder.try_lock());
  DotLockOptions fail;
  fail.fail_when_locked = true;
  DotLock f(dir / "f", fail);
  EXPECT_THROW(f.lock(), locksmith::AlreadyLocked);
  DotLockOptions timed;
  timed.timeout = 100ms;
  DotLock t(dir / "f", timed);
  const auto start = Clock::now();
  EXPECT_THROW(t.lock(), locksmith::LockTimeout);
  EXPECT_GE(Clock::now() - start, 100ms);
  MkdirLockOptions mo;
  mo.timeout = 50ms;
  MkdirLock m1(dir / "m"), m2(dir / "m", mo);
  m1.lock();
  EXPECT_THROW(m2.lock(), locksmith::LockTimeout);
  PidLockFileOptions po;
  po.fail_when_locked = true;
  PidLockFile p1(dir / "p"), p2(dir / "p", po);
  p1.lock();
  EXPECT_THROW(p2.lock(), locksmith::AlreadyLocked);
}

// set_stop_token: a waiting acquire() stopped from another thread returns errc::cancelled at
// once, holds nothing and leaves no file of its own (DotLock's temporary file); a stop requested
// before acquire() starts cancels it too.
template <class L>
class LockfileStop : public ::testing::Test {};
using StopKinds = ::testing::Types<MkdirLock, PidLockFile, DotLock>;
TYPED_TEST_SUITE(LockfileStop, StopKinds);

TYPED_TEST(LockfileStop, StopEndsAWaitingAcquire) {
  TempDir dir;
  TypeParam holder(dir / "f");
  ASSERT_TRUE(holder.try_lock());
  const auto before = lftest::list_dir(dir.path());
  TypeParam waiter(dir / "f");
  std::stop_source stop;
  ASSERT_TRUE(waiter.set_stop_token(stop.get_token()));
  std::error_code ec;
  std::thread t([&] { ec = waiter.acquire(LockMode::exclusive, Clock::now() + 20s); });
  std::this_thread::sleep_for(100ms);  // let it wait (not a synchronisation: either order works)
  const auto t0 = Clock::now();
  stop.request_stop();
  t.join();
  EXPECT_LT(Clock::now() - t0, 1s);
  EXPECT_EQ(ec, errc::cancelled);
  EXPECT_FALSE(waiter.owns_lock());
  EXPECT_EQ(lftest::list_dir(dir.path()), before);
  // Stopped already: the next acquire is cancelled at once, even of a free lock.
  holder.unlock();
  EXPECT_EQ(waiter.acquire(LockMode::exclusive, Clock::now() + 20s), errc::cancelled);
  EXPECT_FALSE(waiter.owns_lock());
  // A fresh token makes it usable again.
  ASSERT_TRUE(waiter.set_stop_token(std::stop_source().get_token()));
  EXPECT_TRUE(waiter.try_lock());
  waiter.unlock();
}

}  // namespace
