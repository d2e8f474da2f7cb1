// Interop, both directions: python3-lockfile (MkdirLockFile, PIDLockFile, LinkLockFile) and
// liblockfile's dotlockfile(1) against locksmith's MkdirLock, PidLockFile and DotLock.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <thread>

#include "lf_util.hpp"
#include "locksmith/lockfile_locks.hpp"
#include "subprocess.hpp"
#include "test_support.hpp"

namespace {

using namespace std::chrono_literals;
using locksmith::DotLock;
using locksmith::DotLockOptions;
using locksmith::errc;
using locksmith::MkdirLock;
using locksmith::PidLockFile;
using locksmith::test::Channel;
using locksmith::test::Subprocess;
using locksmith::test::TempDir;
namespace fs = std::filesystem;

Subprocess python_holder(const std::string& kind, const fs::path& path) {
  return Subprocess::spawn({LF_PYTHON, LF_PEER, kind, path.string(), "none"});
}

std::string python_try(const std::string& kind, const fs::path& path, const std::string& timeout) {
  auto [code, out] = lftest::run({LF_PYTHON, LF_PEER, kind, path.string(), timeout, "--keep"});
  EXPECT_EQ(code, 0);
  return out.substr(0, out.find_first_of(" \n"));
}

template <class L>
void python_holds_locksmith_waits(const std::string& kind, const fs::path& path) {
  auto py = python_holder(kind, path);
  const auto line = py.read_line();
  ASSERT_TRUE(line && line->rfind("locked", 0) == 0) << (line ? *line : "no answer");
  L lock(path);
  EXPECT_FALSE(lock.try_lock());
  EXPECT_FALSE(lock.try_lock_for(150ms));
  EXPECT_EQ(lock.release(), errc::not_locked);
  EXPECT_TRUE(py.send("release"));
  EXPECT_EQ(py.read_line(), "released");
  EXPECT_EQ(py.wait_exit(), 0);
  ASSERT_TRUE(lock.try_lock());
  lock.unlock();
}

template <class L>
void locksmith_holds_python_waits(const std::string& kind, const fs::path& path) {
  L lock(path);
  ASSERT_TRUE(lock.try_lock());
  EXPECT_EQ(python_try(kind, path, "0"), "busy");
  EXPECT_EQ(python_try(kind, path, "0.2"), "timeout");
  // lockfile refuses to release a lock it does not hold.
  auto [code, out] = lftest::run({LF_PYTHON, LF_PEER, "release", kind, path.string()});
  EXPECT_EQ(out, "unlock-error NotMyLock\n");
  lock.unlock();
  EXPECT_EQ(python_try(kind, path, "0"), "locked");  // --keep: stays locked by a gone process
}

TEST(LockfileInterop, MkdirLockFileVsMkdirLock) {
  TempDir dir;
  python_holds_locksmith_waits<MkdirLock>("mkdir", dir / "m");
  locksmith_holds_python_waits<MkdirLock>("mkdir", dir / "m2");
}

TEST(LockfileInterop, PIDLockFileVsPidLockFile) {
  TempDir dir;
  python_holds_locksmith_waits<PidLockFile>("pid", dir / "p");
  locksmith_holds_python_waits<PidLockFile>("pid", dir / "p2");
}

// Ages what lockfile's lock at `path` consists of: the pid file, or the directory and its file.
void age_python_lock(const std::string& kind, const fs::path& path, const std::string& unique) {
  if (kind == "pid") {
    lftest::age_file(path, 60s);
    return;
  }
  fs::path dir = path;
  dir += ".lock";
  lftest::age_file(dir / unique, 60s);
  lftest::age_file(dir, 60s);
}

// lockfile writes no start time: its lock is judged by the pid, and only past stale_grace.
template <class L>
void python_holder_killed_is_broken_after_grace(const std::string& kind, const fs::path& path) {
  auto py = python_holder(kind, path);
  const auto line = py.read_line();
  ASSERT_TRUE(line && line->rfind("locked ", 0) == 0) << (line ? *line : "no answer");
  const std::string unique = line->substr(7);
  L lock(path);
  age_python_lock(kind, path, unique);
  EXPECT_FALSE(lock.try_lock());  // old, but its process lives: never broken
  py.kill(SIGKILL);
  age_python_lock(kind, path, unique);
  ASSERT_TRUE(lock.try_lock());
  EXPECT_EQ(python_try(kind, path, "0"), "busy");  // lockfile sees our lock
  EXPECT_EQ(lock.release(), std::error_code{});
  EXPECT_EQ(python_try(kind, path, "0"), "locked");  // nothing of the dead holder is left
}

template <class L>
void python_holder_killed_is_kept_within_grace(const std::string& kind, const fs::path& path) {
  auto py = python_holder(kind, path);
  const auto line = py.read_line();
  ASSERT_TRUE(line && line->rfind("locked ", 0) == 0) << (line ? *line : "no answer");
  py.kill(SIGKILL);
  L lock(path);
  EXPECT_FALSE(lock.try_lock());
}

// lockfile's break_lock removes our lock, record and all; our release then reports the loss.
template <class L>
void python_breaks_ours(const std::string& cls, const fs::path& path) {
  L lock(path);
  ASSERT_TRUE(lock.try_lock());
  auto [code, out] =
      lftest::run({LF_PYTHON, "-c",
                   "import sys\nfrom lockfile.mkdirlockfile import MkdirLockFile\n"
                   "from lockfile.pidlockfile import PIDLockFile\n"
                   "l=" +
                       cls +
                       "(sys.argv[1]); print(l.is_locked(), l.i_am_locking()); l.break_lock(); "
                       "print(l.is_locked())",
                   path.string()});
  EXPECT_EQ(code, 0);
  EXPECT_EQ(out, "True False\nFalse\n");
  EXPECT_EQ(lock.release(), errc::lock_lost);
}

TEST(LockfileInterop, KilledMkdirLockFileHolderIsBrokenAfterGrace) {
  TempDir dir;
  python_holder_killed_is_broken_after_grace<MkdirLock>("mkdir", dir / "m");
  python_holder_killed_is_kept_within_grace<MkdirLock>("mkdir", dir / "m2");
  python_breaks_ours<MkdirLock>("MkdirLockFile", dir / "m3");
}

TEST(LockfileInterop, KilledPIDLockFileHolderIsBrokenAfterGrace) {
  TempDir dir;
  python_holder_killed_is_broken_after_grace<PidLockFile>("pid", dir / "p");
  python_holder_killed_is_kept_within_grace<PidLockFile>("pid", dir / "p2");
  python_breaks_ours<PidLockFile>("PIDLockFile", dir / "p3");
}

// LinkLockFile's lock is `<path>.lock`, an empty hard link: the same name as DotLock's, so they
// exclude each other (an empty lock counts as held for DotLock's stale_age, 5 minutes).
TEST(LockfileInterop, LinkLockFileVsDotLock) {
  TempDir dir;
  python_holds_locksmith_waits<DotLock>("link", dir / "l");
  DotLock lock(dir / "l2");
  ASSERT_TRUE(lock.try_lock());
  EXPECT_EQ(python_try("link", dir / "l2", "0"), "busy");
  lock.unlock();
  EXPECT_EQ(python_try("link", dir / "l2", "0"), "locked");
}

// --- dotlockfile(1) ------------------------------------------------------------------------------

int dotlockfile(const std::vector<std::string>& args) {
  std::vector<std::string> argv{LF_DOTLOCKFILE};
  argv.insert(argv.end(), args.begin(), args.end());
  return lftest::run(argv).first;
}

constexpr int kLMaxTrys = 4;  // lockfile_create's L_MAXTRYS

TEST(DotlockfileInterop, DotlockfileHoldsLocksmithWaits) {
  TempDir dir;
  const std::string l = (dir / "f.lock").string();
  // dotlockfile -p runs the command holding the lock and writes its own pid.
  auto holder = Subprocess::spawn(
      {LF_DOTLOCKFILE, "-l", "-p", "-r", "0", l, "/bin/sh", "-c", "echo locked; read x"});
  ASSERT_EQ(holder.read_line(), "locked");
  EXPECT_EQ(lftest::read_file(l), std::to_string(holder.pid()) + "\n");
  DotLock lock(dir / "f");
  EXPECT_FALSE(lock.try_lock());
  EXPECT_FALSE(lock.try_lock_for(150ms));
  EXPECT_TRUE(holder.send("go"));
  EXPECT_EQ(holder.wait_exit(), 0);
  EXPECT_FALSE(fs::exists(l));
  ASSERT_TRUE(lock.try_lock());
  lock.unlock();
}

TEST(DotlockfileInterop, LocksmithHoldsDotlockfileFails) {
  TempDir dir;
  const std::string l = (dir / "f.lock").string();
  DotLock lock(dir / "f");
  ASSERT_TRUE(lock.try_lock());
  EXPECT_EQ(dotlockfile({"-l", "-p", "-r", "0", l}), kLMaxTrys);
  EXPECT_EQ(dotlockfile({"-l", "-r", "0", l}), kLMaxTrys);  // without -p: young, so valid
  EXPECT_EQ(lftest::read_file(l), std::to_string(::getpid()) + "\n");
  lock.unlock();
  EXPECT_EQ(dotlockfile({"-l", "-p", "-r", "0", l}), 0);
  // -p without a command writes the caller's pid: the parent of dotlockfile is this test.
  EXPECT_EQ(lftest::read_file(l), std::to_string(::getpid()) + "\n");
  EXPECT_FALSE(lock.try_lock());  // that pid is alive
  EXPECT_EQ(dotlockfile({"-u", l}), 0);
  ASSERT_TRUE(lock.try_lock());
  lock.unlock();
}

TEST(DotlockfileInterop, LocksmithBreaksLockOfDeadDotlockfile) {
  TempDir dir;
  const std::string l = (dir / "f.lock").string();
  // The command kills dotlockfile itself (the pid in the lock) while it holds the lock.
  auto [code, out] =
      lftest::run({LF_DOTLOCKFILE, "-l", "-p", "-r", "0", l, "/bin/sh", "-c", "kill -9 $PPID"});
  EXPECT_EQ(code, -1);  // killed by a signal
  ASSERT_TRUE(fs::exists(l));
  const long pid = std::stol(lftest::read_file(l));
  EXPECT_GT(pid, 0);
  DotLock lock(dir / "f");
  ASSERT_TRUE(lock.try_lock());
  EXPECT_EQ(lftest::read_file(l), std::to_string(::getpid()) + "\n");
  lock.unlock();
}

TEST(DotlockfileInterop, DotlockfileBreaksLockOfKilledLocksmithHolder) {
  TempDir dir;
  const std::string l = (dir / "f.lock").string();
  auto child = Subprocess::fork(
      [&](Channel&) {
        DotLock lock(dir / "f");
        if (!lock.try_lock()) return 2;
        std::printf("locked\n");
        std::fflush(stdout);
        char buf[8];
        (void)!::read(0, buf, sizeof buf);
        return 0;
      },
      true);
  ASSERT_EQ(child.read_line(), "locked");
  EXPECT_EQ(dotlockfile({"-l", "-p", "-r", "0", l}), kLMaxTrys);  // alive
  const std::string content = lftest::read_file(l);
  child.kill(SIGKILL);
  EXPECT_EQ(lftest::read_file(l), content);
  EXPECT_EQ(dotlockfile({"-l", "-p", "-r", "0", l}), 0);  // dead pid: dotlockfile takes it over
  EXPECT_EQ(lftest::read_file(l), std::to_string(::getpid()) + "\n");
  EXPECT_EQ(dotlockfile({"-u", l}), 0);
}

TEST(DotlockfileInterop, AgeRuleBothWays) {
  TempDir dir;
  const std::string l = (dir / "f.lock").string();
  // dotlockfile without -p writes "0\n"; locksmith honours it for 5 minutes, then breaks it.
  ASSERT_EQ(dotlockfile({"-l", "-r", "0", l}), 0);
  EXPECT_EQ(lftest::read_file(l), "0\n");
  DotLock lock(dir / "f");
  EXPECT_FALSE(lock.try_lock());
  lftest::age_file(l, 400s);
  ASSERT_TRUE(lock.try_lock());
  // The caveat: dotlockfile without -p ignores our pid and breaks an old, untouched lock of a
  // live holder; locksmith then reports the loss instead of removing the new lock.
  lftest::age_file(l, 400s);
  EXPECT_EQ(dotlockfile({"-l", "-r", "0", l}), 0);
  EXPECT_EQ(lftest::read_file(l), "0\n");
  EXPECT_EQ(lock.release(), errc::lock_lost);
  EXPECT_TRUE(fs::exists(l));
  // touch() keeps a lock young for dotlockfile without -p.
  EXPECT_EQ(dotlockfile({"-u", l}), 0);
  ASSERT_TRUE(lock.try_lock());
  lftest::age_file(l, 400s);
  ASSERT_FALSE(lock.touch());
  EXPECT_EQ(dotlockfile({"-l", "-r", "0", l}), kLMaxTrys);
  lock.unlock();
}

}  // namespace
