// Multi-process tests: exclusion between forked processes, and stale locks after SIGKILL.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <string>
#include <thread>

#include "lf_util.hpp"
#include "locksmith/lockfile_locks.hpp"
#include "subprocess.hpp"
#include "test_support.hpp"

namespace {

using namespace std::chrono_literals;
using locksmith::DotLock;
using locksmith::MkdirLock;
using locksmith::PidLockFile;
using locksmith::PidLockFileOptions;
using locksmith::test::Channel;
using locksmith::test::Subprocess;
using locksmith::test::TempDir;
namespace fs = std::filesystem;

struct Shared {
  std::atomic<int> inside{0};
  std::atomic<int> violations{0};
  std::atomic<int> entries{0};
};

template <class L>
class LockfileProcesses : public ::testing::Test {};
using Kinds = ::testing::Types<MkdirLock, PidLockFile, DotLock>;
TYPED_TEST_SUITE(LockfileProcesses, Kinds);

TYPED_TEST(LockfileProcesses, ProcessesExcludeEachOther) {
  TempDir dir;
  void* mem =
      ::mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(mem, MAP_FAILED);
  auto* shared = new (mem) Shared;
  constexpr int kProcs = 3, kRounds = 30;
  std::vector<Subprocess> children;
  for (int i = 0; i < kProcs; ++i) {
    children.push_back(Subprocess::fork(
        [&](Channel&) {
          TypeParam lock(dir / "f");
          for (int r = 0; r < kRounds; ++r) {
            if (!lock.try_lock_for(locksmith::test::kWaitLimit)) return 2;
            if (shared->inside.fetch_add(1) != 0) shared->violations.fetch_add(1);
            shared->entries.fetch_add(1);
            std::this_thread::sleep_for(200us);  // widen the critical section
            shared->inside.fetch_sub(1);
            lock.unlock();
          }
          return 0;
        },
        true));
  }
  for (auto& c : children) {
    const auto status = c.wait_exit(60s);
    EXPECT_EQ(status, 0) << status.value_or(-1000);
  }
  EXPECT_EQ(shared->violations.load(), 0);
  EXPECT_EQ(shared->entries.load(), kProcs * kRounds);
  ::munmap(mem, sizeof(Shared));
}

// A release in a process that has run out of descriptors (EMFILE) must still remove the lock:
// it used to open the lock file again to check it, failed, and left the lock behind for good.
TYPED_TEST(LockfileProcesses, ReleaseWorksWithoutFreeDescriptors) {
#if defined(__SANITIZE_ADDRESS__)
  // UBSan's vptr check (built together with ASan here) opens a pipe to probe memory: out of
  // descriptors it reports a false "invalid vptr" and halts the child.
  GTEST_SKIP() << "the sanitizer runtime itself needs free descriptors";
#endif
  TempDir dir;
  TypeParam probe(dir / "f");
  Subprocess child = Subprocess::fork(
      [&](Channel&) {
        TypeParam lock(dir / "f");
        if (!lock.try_lock()) return 2;
        struct rlimit rl {};
        if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return 3;
        rl.rlim_cur = 64;
        if (::setrlimit(RLIMIT_NOFILE, &rl) != 0) return 3;
        while (::dup(0) >= 0) {
        }
        if (errno != EMFILE) return 4;
        const std::error_code ec = lock.release();
        std::printf("%s\n", ec ? ec.message().c_str() : "released");
        std::fflush(stdout);
        return ec ? 1 : 0;
      },
      true);
  EXPECT_EQ(child.read_line().value_or("(no answer)"), "released");
  const auto status = child.wait_exit();
  EXPECT_EQ(status, 0) << status.value_or(-1000);
  EXPECT_FALSE(probe.is_locked()) << "the lock stayed behind";
  EXPECT_EQ(lftest::list_dir(dir.path()), std::vector<std::string>{});
}

// A holder that acquires, says "locked PID", and waits for a line (or SIGKILL).
template <class L>
Subprocess holder(const fs::path& path) {
  return Subprocess::fork(
      [path](Channel&) {
        L lock(path);
        if (!lock.try_lock_for(locksmith::test::kWaitLimit)) return 2;
        std::printf("locked %d\n", static_cast<int>(::getpid()));
        std::fflush(stdout);
        char buf[16];
        (void)!::read(0, buf, sizeof buf);
        lock.unlock();
        return 0;
      },
      true);
}

TEST(DotLockProcesses, StaleLockBrokenAfterHolderKilledNeverWhileAlive) {
  TempDir dir;
  auto child = holder<DotLock>(dir / "f");
  const auto line = child.read_line();
  ASSERT_TRUE(line && line->rfind("locked ", 0) == 0);
  const std::string pid = line->substr(7);
  EXPECT_EQ(lftest::read_file(dir / "f.lock"), pid + "\n");
  DotLock other(dir / "f");
  EXPECT_FALSE(other.try_lock());
  EXPECT_FALSE(other.try_lock_for(200ms));  // alive: never broken
  EXPECT_EQ(lftest::read_file(dir / "f.lock"), pid + "\n");
  child.kill(SIGKILL);
  EXPECT_EQ(lftest::read_file(dir / "f.lock"), pid + "\n");  // left behind by the crash
  ASSERT_TRUE(other.try_lock());
  EXPECT_EQ(lftest::read_file(dir / "f.lock"), std::to_string(::getpid()) + "\n");
  other.unlock();
}

TEST(DotLockProcesses, WaiterTakesOverWhenHolderDiesDuringTheWait) {
  TempDir dir;
  auto child = holder<DotLock>(dir / "f");
  ASSERT_TRUE(child.read_line());
  DotLock other(dir / "f");
  std::thread killer([&] { child.kill(SIGKILL); });
  EXPECT_TRUE(other.try_lock_for(locksmith::test::kWaitLimit));
  killer.join();
  other.unlock();
}

template <class L>
class StaleProcesses : public ::testing::Test {};
using ProtocolKinds = ::testing::Types<MkdirLock, PidLockFile>;
TYPED_TEST_SUITE(StaleProcesses, ProtocolKinds);

// Fails before stale detection: a SIGKILLed holder's lock stayed forever.
TYPED_TEST(StaleProcesses, KilledHolderIsTakenOverAtOnceNeverWhileAlive) {
  TempDir dir;
  auto child = holder<TypeParam>(dir / "f");
  ASSERT_TRUE(child.read_line());
  TypeParam other(dir / "f");
  EXPECT_FALSE(other.try_lock());
  EXPECT_FALSE(other.try_lock_for(200ms));  // alive: never broken
  child.kill(SIGKILL);
  ASSERT_TRUE(other.try_lock());  // its first attempt: no grace period for a full record
  other.unlock();
  EXPECT_EQ(lftest::list_dir(dir.path()), std::vector<std::string>{});
}

TYPED_TEST(StaleProcesses, WaiterTakesOverWhenHolderDiesDuringTheWait) {
  TempDir dir;
  auto child = holder<TypeParam>(dir / "f");
  ASSERT_TRUE(child.read_line());
  TypeParam other(dir / "f");
  std::thread killer([&] { child.kill(SIGKILL); });
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(other.try_lock_for(locksmith::test::kWaitLimit));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);  // backoff is at most 128 ms
  killer.join();
  other.unlock();
}

// A holder killed but not yet reaped is a zombie: its pid exists, yet it will never release.
TYPED_TEST(StaleProcesses, ZombieHolderIsGone) {
  TempDir dir;
  Subprocess child;
  ASSERT_NO_THROW(child = Subprocess::fork([&](Channel& parent) {
                    TypeParam lock(dir / "f");
                    parent.send(lock.try_lock_for(locksmith::test::kWaitLimit) ? 'y' : 'n');
                    return 0;  // no release: the lock stays behind
                  }));
  const auto ok = child.receive();
  ASSERT_TRUE(ok.has_value()) << "the child said nothing";
  ASSERT_EQ(*ok, 'y');
  // The child has said it holds the lock and then exits; it stays a zombie until wait_exit below.
  siginfo_t info{};
  ASSERT_EQ(::waitid(P_PID, static_cast<id_t>(child.pid()), &info, WEXITED | WNOWAIT), 0);
  TypeParam other(dir / "f");
  EXPECT_TRUE(other.try_lock());
  EXPECT_EQ(child.wait_exit(), 0);
  other.unlock();
}

TEST(PidLockFileProcesses, StaleOffLeavesAKilledHoldersLock) {
  TempDir dir;
  auto child = holder<PidLockFile>(dir / "p");
  ASSERT_TRUE(child.read_line());
  PidLockFileOptions off;
  off.stale = locksmith::StalePolicy::off;
  PidLockFile plain(dir / "p", off);
  child.kill(SIGKILL);
  EXPECT_FALSE(plain.try_lock());  // lockfile semantics: stays locked
  EXPECT_FALSE(plain.break_lock());
  ASSERT_TRUE(plain.try_lock());
  plain.unlock();
}

// Many waiters racing to break the locks of holders that die holding: never two inside.
TYPED_TEST(StaleProcesses, RacingBreakersNeverLetTwoIn) {
  TempDir dir;
  void* mem =
      ::mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(mem, MAP_FAILED);
  auto* shared = new (mem) Shared;
  constexpr int kWorkers = 4, kRounds = 15;
  std::vector<Subprocess> workers;
  for (int w = 0; w < kWorkers; ++w) {
    workers.push_back(Subprocess::fork(
        [&, w](Channel&) {
          for (int r = 0; r < kRounds; ++r) {
            // Each round is a fresh process, so that a crash leaves a real dead holder behind.
            const pid_t pid = ::fork();
            if (pid < 0) return 3;
            if (pid == 0) {
              TypeParam lock(dir / "f");
              const std::error_code ec =
                  lock.acquire(locksmith::LockMode::exclusive,
                               locksmith::Clock::now() + locksmith::test::kWaitLimit);
              if (ec) {
                std::fprintf(stderr, "acquire: %s\n", ec.message().c_str());
                ::_exit(2);
              }
              if (shared->inside.fetch_add(1) != 0) shared->violations.fetch_add(1);
              shared->entries.fetch_add(1);
              std::this_thread::sleep_for(300us);  // widen the critical section
              shared->inside.fetch_sub(1);
              if ((r + w) % 2 == 0) ::_exit(0);                   // dies holding it
              if (const std::error_code lost = lock.release()) {  // e.g. lock_lost: a release race
                std::fprintf(stderr, "release: %s\n", lost.message().c_str());
                ::_exit(5);
              }
              ::_exit(0);
            }
            int status = 0;
            const pid_t got = ::waitpid(pid, &status, 0);
            if (got != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
              std::fprintf(stderr, "round %d: waitpid %d, status %#x\n", r, static_cast<int>(got),
                           status);
              return 4;
            }
          }
          return 0;
        },
        true));
  }
  for (auto& c : workers) {
    const auto status = c.wait_exit(120s);
    EXPECT_EQ(status, 0) << status.value_or(-1000);
  }
  EXPECT_EQ(shared->violations.load(), 0);
  EXPECT_EQ(shared->entries.load(), kWorkers * kRounds);
  ::munmap(mem, sizeof(Shared));
}

TEST(MkdirLockProcesses, StaleOffLeavesLockUntilBroken) {
  TempDir dir;
  auto child = holder<MkdirLock>(dir / "m");
  ASSERT_TRUE(child.read_line());
  child.kill(SIGKILL);
  locksmith::MkdirLockOptions off;
  off.stale = locksmith::StalePolicy::off;
  MkdirLock other(dir / "m", off);
  EXPECT_FALSE(other.try_lock());
  EXPECT_FALSE(other.break_lock());
  ASSERT_TRUE(other.try_lock());
  other.unlock();
}

TEST(DotLockProcesses, HolderReleaseWakesWaiter) {
  TempDir dir;
  auto child = holder<DotLock>(dir / "f");
  ASSERT_TRUE(child.read_line());
  EXPECT_TRUE(child.send("release"));
  DotLock other(dir / "f");
  EXPECT_TRUE(other.try_lock_for(locksmith::test::kWaitLimit));
  EXPECT_EQ(child.wait_exit(), 0);
  other.unlock();
}

// ESTALE: on NFS a lock removed between two calls can make the second fail with ESTALE instead of
// ENOENT. A child whose lstat(2) calls fail with ESTALE (a seccomp filter on newfstatat with
// AT_SYMLINK_NOFOLLOW: a real kernel error, not a mock) must treat it as "the lock vanished" and
// retry: a no-wait attempt on a held lock says busy, not ESTALE. An ESTALE that never goes away is
// reported as the OS error after a bounded number of retries, not spun on until the deadline.
namespace estale {

using locksmith::test::kWaitLimit;

// What the child saw: "busy", "timeout", "held" or "error: <message>"; "skip" without seccomp.
template <class L>
std::string acquire_under_estale(const fs::path& path, std::chrono::milliseconds wait) {
  Subprocess child = Subprocess::fork(
      [&](Channel&) {
        if (!locksmith::test::fail_syscalls({SYS_newfstatat}, ESTALE, false,
                                            std::pair{3u, std::uint32_t{AT_SYMLINK_NOFOLLOW}})) {
          std::puts("skip");
          return 0;
        }
        L lock(path);
        const auto deadline = wait.count() == 0 ? locksmith::Clock::time_point::min()
                                                : locksmith::Clock::now() + wait;
        const std::error_code ec = lock.acquire(locksmith::LockMode::exclusive, deadline);
        std::string out = !ec                              ? "held"
                          : ec == locksmith::errc::busy    ? "busy"
                          : ec == locksmith::errc::timeout ? "timeout"
                                                           : "error: " + ec.message();
        std::puts(out.c_str());
        std::fflush(stdout);
        return 0;
      },
      true);
  const auto line = child.read_line();
  EXPECT_EQ(child.wait_exit(), 0);
  return line.value_or("(no answer)");
}

template <class L>
class EstaleRetry : public ::testing::Test {};
using EstaleKinds = ::testing::Types<MkdirLock, DotLock>;
TYPED_TEST_SUITE(EstaleRetry, EstaleKinds);

TYPED_TEST(EstaleRetry, VanishingLockIsRetriedAPersistentErrorReported) {
  TempDir dir;
  TypeParam held(dir / "x");
  ASSERT_TRUE(held.try_lock());
  const std::string no_wait = acquire_under_estale<TypeParam>(dir / "x", 0ms);
  if (no_wait == "skip") GTEST_SKIP() << "no seccomp filter on this CPU or kernel";
  EXPECT_EQ(no_wait, "busy");
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(acquire_under_estale<TypeParam>(dir / "x", 10s), "error: Stale file handle");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);  // not spun on until the deadline
  held.unlock();
}

}  // namespace estale

}  // namespace
