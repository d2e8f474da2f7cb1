// Multi-process tests: exclusion between forked processes, and stale locks after SIGKILL.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "lf_util.hpp"
#include "locksmith/lockfile_locks.hpp"
#include "test_support.hpp"

namespace {

using namespace std::chrono_literals;
using locksmith::DotLock;
using locksmith::MkdirLock;
using locksmith::PidLockFile;
using locksmith::PidLockFileOptions;
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
  std::vector<lftest::Child> children;
  for (int i = 0; i < kProcs; ++i) {
    children.push_back(lftest::Child::fork([&] {
      TypeParam lock(dir / "f");
      for (int r = 0; r < kRounds; ++r) {
        if (!lock.try_lock_for(lftest::kWait)) return 2;
        if (shared->inside.fetch_add(1) != 0) shared->violations.fetch_add(1);
        shared->entries.fetch_add(1);
        std::this_thread::sleep_for(200us);  // widen the critical section
        shared->inside.fetch_sub(1);
        lock.unlock();
      }
      return 0;
    }));
  }
  for (auto& c : children) {
    const int status = c.wait(60s);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  }
  EXPECT_EQ(shared->violations.load(), 0);
  EXPECT_EQ(shared->entries.load(), kProcs * kRounds);
  ::munmap(mem, sizeof(Shared));
}

// A holder that acquires, says "locked PID", and waits for a line (or SIGKILL).
template <class L>
lftest::Child holder(const fs::path& path) {
  return lftest::Child::fork([path] {
    L lock(path);
    if (!lock.try_lock_for(lftest::kWait)) return 2;
    std::printf("locked %d\n", static_cast<int>(::getpid()));
    std::fflush(stdout);
    char buf[16];
    (void)!::read(0, buf, sizeof buf);
    lock.unlock();
    return 0;
  });
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
  child.kill9();
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
  std::thread killer([&] { child.kill9(); });
  EXPECT_TRUE(other.try_lock_for(lftest::kWait));
  killer.join();
  other.unlock();
}

TEST(PidLockFileProcesses, KilledHolderLeavesLockUnlessBreakStalePid) {
  TempDir dir;
  auto child = holder<PidLockFile>(dir / "p");
  ASSERT_TRUE(child.read_line());
  PidLockFileOptions opts;
  opts.break_stale_pid = true;
  PidLockFile plain(dir / "p"), breaker(dir / "p", opts);
  EXPECT_FALSE(breaker.try_lock());  // alive
  child.kill9();
  EXPECT_FALSE(plain.try_lock());  // lockfile semantics: stays locked
  ASSERT_TRUE(breaker.try_lock());
  breaker.unlock();
}

TEST(MkdirLockProcesses, KilledHolderLeavesLockUntilBroken) {
  TempDir dir;
  auto child = holder<MkdirLock>(dir / "m");
  ASSERT_TRUE(child.read_line());
  child.kill9();
  MkdirLock other(dir / "m");
  EXPECT_FALSE(other.try_lock());
  EXPECT_FALSE(other.break_lock());
  ASSERT_TRUE(other.try_lock());
  other.unlock();
}

TEST(DotLockProcesses, HolderReleaseWakesWaiter) {
  TempDir dir;
  auto child = holder<DotLock>(dir / "f");
  ASSERT_TRUE(child.read_line());
  child.write_line("release");
  DotLock other(dir / "f");
  EXPECT_TRUE(other.try_lock_for(lftest::kWait));
  EXPECT_EQ(child.wait(), 0);
  other.unlock();
}

}  // namespace
