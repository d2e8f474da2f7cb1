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
#include "subprocess.hpp"
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
using locksmith::test::Channel;
using locksmith::test::Subprocess;
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
  Subprocess c = Subprocess::fork(
      [&](Channel&) {
        if (::setgid(65534) != 0 || ::setuid(65534) != 0) return 3;
        const auto ec = fn();
        std::printf("%d\n", ec.value());
        return 0;
      },
      true);
  const auto line = c.read_line();
  EXPECT_EQ(c.wait_exit(), 0);
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

TEST(MkdirLock, CreatesDirectoryWithOneFileLikeLockfile) {
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
  // lockfile writes it empty and only tests that it exists; ours holds the holder record.
  const std::string record = lftest::read_file(dir / "cc.lock" / ours);
  EXPECT_EQ(record.rfind(std::to_string(::getpid()) + "\nlocksmith-holder v=1 start=", 0), 0u)
      << record;
  EXPECT_NE(record.find(" host=" + hostname() + "\n"), std::string::npos) << record;
  EXPECT_EQ(file_mode(dir / "cc.lock" / ours) & 07777,
            file_mode(dir / "py.lock" / py_unique) & 07777);
  EXPECT_EQ(lock.describe().token, ours);
  lock.unlock();
  EXPECT_FALSE(fs::exists(dir / "cc.lock"));
  // lockfile's lock of a gone process, but younger than stale_grace: not judged yet.
  EXPECT_TRUE(fs::exists(dir / "py.lock"));
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
  EXPECT_TRUE(b.try_lock_for(locksmith::test::kWaitLimit));
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
  Subprocess c = Subprocess::fork(
      [&](Channel&) {
        return a.release() == errc::not_locked ? 0 : 1;  // and the destructor at exit does nothing
      },
      true);
  EXPECT_EQ(c.wait_exit(), 0);
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
  // lockfile's "%d\n", then the holder record on a line that lockfile's read_pid never reads.
  const std::string text = lftest::read_file(dir / "cc.pid");
  EXPECT_EQ(text.rfind(std::to_string(::getpid()) + "\nlocksmith-holder v=1 start=", 0), 0u)
      << text;
  EXPECT_NE(text.find(" host=" + hostname() + "\n"), std::string::npos) << text;
  auto [pcode, pout] = lftest::run({LF_PYTHON, "-c",
                                    "import sys\nfrom lockfile.pidlockfile import PIDLockFile\n"
                                    "print(PIDLockFile(sys.argv[1]).read_pid())",
                                    (dir / "cc.pid").string()});
  EXPECT_EQ(pout, std::to_string(::getpid()) + "\n");
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

TEST(PidLockFile, BarePidBrokenOnlyWhenDeadAndOlderThanGrace) {
  TempDir dir;
  const std::string dead = std::to_string(locksmith::test::dead_pid()) + "\n";
  PidLockFileOptions off;
  off.stale = locksmith::StalePolicy::off;
  PidLockFile plain(dir / "p", off), breaker(dir / "p");
  lftest::write_file(dir / "p", dead);
  EXPECT_FALSE(breaker.try_lock());  // lockfile's file, younger than stale_grace
  lftest::age_file(dir / "p", 60s);
  EXPECT_FALSE(plain.try_lock());  // stale=off: lockfile semantics, never broken
  for (const std::string& alive : {std::to_string(::getppid()) + "\n", std::string("junk\n"),
                                   std::string("0\n"), std::string("-3\n")}) {
    lftest::write_file(dir / "p", alive);
    lftest::age_file(dir / "p", 60s);
    EXPECT_FALSE(breaker.try_lock()) << alive;
    EXPECT_EQ(lftest::read_file(dir / "p"), alive);
  }
  // Empty: the creator died between open(O_EXCL) and write(); judged once older than the grace.
  lftest::write_file(dir / "p", "");
  EXPECT_FALSE(breaker.try_lock());
  lftest::age_file(dir / "p", 60s);
  ASSERT_TRUE(breaker.try_lock());
  breaker.unlock();
  lftest::write_file(dir / "p", dead);
  lftest::age_file(dir / "p", 60s);
  ASSERT_TRUE(breaker.try_lock());
  EXPECT_EQ(breaker.read_pid(), ::getpid());
  breaker.unlock();
  EXPECT_EQ(lftest::list_dir(dir.path()), std::vector<std::string>{});  // nothing left beside
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

// --- the stale rule of MkdirLock and PidLockFile -------------------------------------------------

// Puts a lock whose holder record is `record` where L looks, as if another process held it.
void plant(const PidLockFile& l, const std::string& record, std::chrono::seconds age = 0s) {
  lftest::write_file(l.path(), record);
  if (age > 0s) lftest::age_file(l.path(), age);
}
void plant(const MkdirLock& l, const std::string& record, std::chrono::seconds age = 0s) {
  fs::create_directory(l.lock_path());
  const fs::path file = l.lock_path() / (hostname() + ".holder");
  lftest::write_file(file, record);
  if (age > 0s) {
    lftest::age_file(file, age);
    lftest::age_file(l.lock_path(), age);
  }
}
fs::path planted_path(const PidLockFile& l) { return l.path(); }
fs::path planted_path(const MkdirLock& l) { return l.lock_path() / (hostname() + ".holder"); }
fs::path record_path(const PidLockFile& l) { return l.path(); }
fs::path record_path(const MkdirLock& l) { return l.unique_path(); }

// The record a lock of this process writes.
template <class L>
std::string own_record(const fs::path& path) {
  L lock(path);
  EXPECT_TRUE(lock.try_lock());
  std::string text = lftest::read_file(record_path(lock));
  lock.unlock();
  return text;
}

// `record` with field `key` (start, boot, pidns, host) set to `value`.
std::string with_field(std::string record, const std::string& key, const std::string& value) {
  const std::size_t at = record.find(" " + key + "=");
  EXPECT_NE(at, std::string::npos) << key << " in " << record;
  const std::size_t from = at + key.size() + 2;
  const std::size_t to = key == "host" ? record.find('\n', from) : record.find(' ', from);
  return record.replace(from, to - from, value);
}

std::string with_pid(std::string record, long pid) {
  return std::to_string(pid) + record.substr(record.find('\n'));
}

template <class L>
class StaleRule : public ::testing::Test {};
using ProtocolKinds = ::testing::Types<MkdirLock, PidLockFile>;
TYPED_TEST_SUITE(StaleRule, ProtocolKinds);

TYPED_TEST(StaleRule, LiveHolderIsNeverBroken) {
  TempDir dir;
  TypeParam holder(dir / "f"), waiter(dir / "f");
  ASSERT_TRUE(holder.try_lock());
  EXPECT_FALSE(waiter.try_lock());
  EXPECT_FALSE(waiter.try_lock_for(100ms));
  // Also as a file left by "another" holder with our (live) pid and start time, however old.
  const std::string record = lftest::read_file(record_path(holder));
  holder.unlock();
  plant(waiter, record, 3600s);
  EXPECT_FALSE(waiter.try_lock());
  EXPECT_EQ(lftest::read_file(planted_path(waiter)), record);
}

TYPED_TEST(StaleRule, LivePidWithAnotherStartTimeIsPidReuse) {
  TempDir dir;
  const std::string record = own_record<TypeParam>(dir / "f");
  TypeParam waiter(dir / "f");
  plant(waiter, with_field(record, "start", "1"));  // our live pid, but not our start: reused
  ASSERT_TRUE(waiter.try_lock());                   // at once: a full record needs no grace period
  EXPECT_EQ(lftest::read_file(record_path(waiter)), record);
  waiter.unlock();
  EXPECT_FALSE(fs::exists(record_path(waiter)));
  EXPECT_EQ(lftest::list_dir(dir.path()), std::vector<std::string>{});  // leftovers removed
}

TYPED_TEST(StaleRule, DeadPidOrOtherBootIsStale) {
  TempDir dir;
  const std::string record = own_record<TypeParam>(dir / "f");
  TypeParam waiter(dir / "f");
  plant(waiter, with_pid(record, locksmith::test::dead_pid()));
  ASSERT_TRUE(waiter.try_lock());
  waiter.unlock();
  plant(waiter, with_field(record, "boot", "00000000-0000-4000-8000-000000000000"));
  ASSERT_TRUE(waiter.try_lock());  // our pid runs, but the holder's boot is over
  waiter.unlock();
}

TYPED_TEST(StaleRule, AnotherHostOrPidNamespaceIsNeverJudged) {
  TempDir dir;
  const std::string record =
      with_pid(own_record<TypeParam>(dir / "f"), locksmith::test::dead_pid());
  TypeParam waiter(dir / "f");
  for (const std::string& foreign : {with_field(with_field(record, "host", "elsewhere.example"),
                                                "boot", "00000000-0000-4000-8000-000000000000"),
                                     with_field(record, "pidns", "1")}) {
    plant(waiter, foreign, 3600s);
    EXPECT_FALSE(waiter.try_lock()) << foreign;
    EXPECT_EQ(lftest::read_file(planted_path(waiter)), foreign);
    EXPECT_FALSE(waiter.break_lock());
  }
}

TYPED_TEST(StaleRule, StaleOffKeepsLockfilesNever) {
  TempDir dir;
  const std::string record =
      with_pid(own_record<TypeParam>(dir / "f"), locksmith::test::dead_pid());
  typename std::conditional_t<std::is_same_v<TypeParam, MkdirLock>, MkdirLockOptions,
                              PidLockFileOptions>
      off;
  off.stale = locksmith::StalePolicy::off;
  TypeParam plain(dir / "f", off);
  plant(plain, record, 3600s);
  EXPECT_FALSE(plain.try_lock());
  EXPECT_FALSE(plain.break_lock());
  EXPECT_TRUE(plain.try_lock());
  plain.unlock();
}

TEST(MkdirLock, LockfilesNamesAreJudgedByHostAndEveryPossiblePid) {
  TempDir dir;
  MkdirLock waiter(dir / "m");
  const std::string dead = std::to_string(locksmith::test::dead_pid());
  const std::string alive = std::to_string(::getppid());
  const auto plant_named = [&](const std::string& name, std::chrono::seconds age) {
    fs::create_directory(waiter.lock_path());
    lftest::write_file(waiter.lock_path() / name, "");
    lftest::age_file(waiter.lock_path() / name, age);
    lftest::age_file(waiter.lock_path(), age);
  };
  // Another host's lock, however old and whatever its pid.
  plant_named("elsewhere.example.-1a2b3c4d" + dead, 3600s);
  EXPECT_FALSE(waiter.try_lock());
  ASSERT_FALSE(waiter.break_lock());
  // Ours but younger than the grace period.
  plant_named(hostname() + ".-1a2b3c4d" + dead, 0s);
  EXPECT_FALSE(waiter.try_lock());
  ASSERT_FALSE(waiter.break_lock());
  // "-<hex><pid>" where the hex may end in digits: "...d1" + pid could also be pid "1<pid>" or
  // the live one; any live reading keeps the lock.
  plant_named(hostname() + ".-abcd" + alive, 3600s);
  EXPECT_FALSE(waiter.try_lock());
  ASSERT_FALSE(waiter.break_lock());
  plant_named(hostname() + "." + alive, 3600s);  // threaded=False
  EXPECT_FALSE(waiter.try_lock());
  ASSERT_FALSE(waiter.break_lock());
  plant_named(hostname() + ".-1a2b3c4d" + dead, 3600s);
  ASSERT_TRUE(waiter.try_lock());
  waiter.unlock();
  plant_named(hostname() + "." + dead, 3600s);
  ASSERT_TRUE(waiter.try_lock());
  waiter.unlock();
  // An empty directory (its creator died before writing its file), once past the grace period.
  fs::create_directory(waiter.lock_path());
  EXPECT_FALSE(waiter.try_lock());
  lftest::age_file(waiter.lock_path(), 3600s);
  ASSERT_TRUE(waiter.try_lock());
  waiter.unlock();
  EXPECT_EQ(lftest::list_dir(dir.path()), std::vector<std::string>{});
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
  const std::string dead = std::to_string(locksmith::test::dead_pid()) + "\n";
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
