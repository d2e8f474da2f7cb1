// Multi-process tests of LinkLock: exclusion, breaking a dead holder's lock only after
// expiry + clock slop, never breaking a holder that refreshes, fork semantics.
// Children are forked (no threads exist at fork time) and talk over pipes; every wait is bounded.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "link_test_util.hpp"
#include "locksmith/link_lock.hpp"
#include "subprocess.hpp"
#include "test_support.hpp"

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using locksmith::Clock;
using locksmith::errc;
using locksmith::LinkLock;
using locksmith::LinkLockOptions;
using locksmith::LockMode;
using locksmith::test::TempDir;
namespace lt = locksmith::linktest;
using locksmith::test::Channel;
using locksmith::test::Subprocess;

// Anonymous shared memory, visible to forked children.
struct Shared {
  std::atomic<std::int64_t> occupancy{0};
  std::atomic<std::int64_t> max_occupancy{0};
  std::atomic<std::int64_t> entries{0};
  std::atomic<std::int64_t> errors{0};
  std::atomic<std::int64_t> contended{0};  // acquisitions that had to wait (informational)
};

Shared* map_shared() {
  void* p =
      ::mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return nullptr;
  return new (p) Shared;
}

TEST(LinkLockMultiprocess, ExcludesBetweenProcesses) {
  TempDir dir;
  const fs::path path = dir / "res.lock";
  Shared* shared = map_shared();
  ASSERT_NE(shared, nullptr);
  constexpr int kProcs = 3;
  constexpr int kIters = 300;
  std::vector<std::unique_ptr<Subprocess>> kids;
  for (int i = 0; i < kProcs; ++i) {
    kids.push_back(std::make_unique<Subprocess>());
    ASSERT_NO_THROW(*kids.back() = Subprocess::fork([&](Channel& parent) {
      LinkLockOptions opts;
      opts.backoff_max = 5ms;
      LinkLock lock(path, opts);
      parent.send("READY");
      if (parent.read_line().value_or("") != "go") return 3;  // start together
      for (int n = 0; n < kIters; ++n) {
        // Many release/link races happen here: link() EEXIST, then the lock file vanishes before
        // stat(). Any error surfacing from them is counted.
        std::error_code ec = lock.acquire(LockMode::exclusive, Clock::time_point::min());
        if (ec == make_error_code(errc::busy)) {
          shared->contended++;
          ec = lock.acquire(LockMode::exclusive, Clock::now() + 15s);
        }
        if (ec) {
          shared->errors++;
          continue;
        }
        const auto occ = ++shared->occupancy;
        auto seen = shared->max_occupancy.load();
        while (occ > seen && !shared->max_occupancy.compare_exchange_weak(seen, occ)) {
        }
        shared->entries++;
        // Stay inside a little while (busy, ~50 us), so that the others really wait.
        const auto until = Clock::now() + 50us;
        while (Clock::now() < until) {
        }
        --shared->occupancy;
        if (lock.release()) shared->errors++;
      }
      return 0;
    }));
  }
  for (auto& k : kids) ASSERT_EQ(k->read_line().value_or(""), "READY");
  for (auto& k : kids) ASSERT_TRUE(k->send("go"));
  for (auto& k : kids) {
    const auto st = k->wait_exit(30s);
    ASSERT_TRUE(st.has_value());
    EXPECT_TRUE(*st == 0);
  }
  EXPECT_EQ(shared->errors.load(), 0);
  EXPECT_EQ(shared->max_occupancy.load(), 1);
  EXPECT_EQ(shared->entries.load(), kProcs * kIters);
  RecordProperty("contended", std::to_string(shared->contended.load()));
  std::printf("contended acquisitions: %lld of %d\n",
              static_cast<long long>(shared->contended.load()), kProcs * kIters);
  EXPECT_FALSE(fs::exists(path));
  // Every child's destructor removed its claim.
  EXPECT_TRUE(lt::claim_files(dir.path(), "res.lock").empty());
  ::munmap(shared, sizeof(Shared));
}

// The lock file can vanish between a failed link() (EEXIST) and the stat() that follows, when the
// holder releases in between. That must read as "busy" or "got it" after a retry, never as an
// error: a child takes and releases the lock in a tight loop while we try_lock() (which throws on
// any error) many times.
TEST(LinkLockMultiprocess, ReleaseRacingLinkAndStatIsNotAnError) {
  TempDir dir;
  const fs::path path = dir / "res.lock";
  Subprocess churner;
  ASSERT_NO_THROW(churner = Subprocess::fork([&](Channel& parent) {
                    LinkLock lock(path);
                    parent.send("READY");
                    struct pollfd pfd {};
                    pfd.fd = parent.in_fd();
                    pfd.events = POLLIN;
                    const auto until = Clock::now() + 20s;
                    int errors = 0;
                    while (::poll(&pfd, 1, 0) == 0 && Clock::now() < until) {
                      if (lock.acquire(LockMode::exclusive, Clock::now() + 5s) || lock.release())
                        ++errors;
                    }
                    parent.send("ERRORS " + std::to_string(errors));
                    return 0;
                  }));
  ASSERT_EQ(churner.read_line().value_or(""), "READY");
  LinkLock lock(path);
  int got = 0;
  int busy = 0;
  for (int i = 0; i < 3000; ++i) {
    bool ok = false;
    ASSERT_NO_THROW(ok = lock.try_lock());
    if (ok) {
      ++got;
      lock.unlock();
    } else {
      ++busy;
    }
  }
  ASSERT_TRUE(churner.send("stop"));
  EXPECT_EQ(churner.read_line().value_or(""), "ERRORS 0");
  std::printf("try_lock: %d got, %d busy\n", got, busy);
  EXPECT_EQ(got + busy, 3000);
}

// A child that takes the lock (lifetime `lifetime`), reports "LOCKED <claim>", then obeys
// "refresh" (reports OK/FAIL), "release" (reports the release result) or just sits.
int holder_role(const fs::path& path, std::chrono::seconds lifetime, Channel& parent) {
  LinkLockOptions opts;
  opts.lifetime = lifetime;
  LinkLock lock(path, opts);
  if (!lock.try_lock_for(10s)) return 2;
  parent.send("LOCKED " + lock.claim_path());
  for (;;) {
    const std::string cmd = parent.read_line(30s).value_or("");
    if (cmd == "refresh") {
      parent.send(lock.refresh() ? "FAIL" : "OK");
    } else if (cmd == "release") {
      const std::error_code ec = lock.release();
      parent.send(ec ? ec.message() : "RELEASED");
    } else {
      return 0;
    }
  }
}

TEST(LinkLockMultiprocess, DeadHoldersLockIsBrokenAfterExpiryPlusSlop) {
  TempDir dir;
  const fs::path path = dir / "res.lock";
  Subprocess holder;
  ASSERT_NO_THROW(
      holder = Subprocess::fork([&](Channel& parent) { return holder_role(path, 1s, parent); }));
  const auto line = holder.read_line().value_or("");
  ASSERT_EQ(line.rfind("LOCKED ", 0), 0u) << line;
  const std::string dead_claim = line.substr(7);
  const long long expiry = lt::stat_of(path).st_mtim.tv_sec;
  ::kill(holder.pid(), SIGKILL);
  ASSERT_TRUE(holder.wait_exit().has_value());
  EXPECT_TRUE(fs::exists(path));  // nothing is released by the OS

  LinkLockOptions opts;
  opts.clock_slop = 1s;
  LinkLock waiter(path, opts);
  ASSERT_TRUE(waiter.try_lock_for(10s));
  // Broken only once now > expiry + slop.
  EXPECT_GT(std::chrono::system_clock::now(),
            std::chrono::system_clock::time_point(std::chrono::seconds(expiry + 1)));
  EXPECT_EQ(lt::read_file(path), waiter.claim_path());
  EXPECT_FALSE(fs::exists(dead_claim));
  waiter.unlock();
}

// The same with '|' in the directory and file names: the claim has more than four fields, and
// must still be recognised (parsed from the right), or every waiter would wait forever.
TEST(LinkLockMultiprocess, DeadHoldersLockAtPathWithSeparatorIsBroken) {
  TempDir dir;
  fs::create_directory(dir / "d|ir");
  const fs::path path = dir / "d|ir" / "re|s.lock";
  Subprocess holder;
  ASSERT_NO_THROW(
      holder = Subprocess::fork([&](Channel& parent) { return holder_role(path, 1s, parent); }));
  const auto line = holder.read_line().value_or("");
  ASSERT_EQ(line.rfind("LOCKED ", 0), 0u) << line;
  const std::string dead_claim = line.substr(7);
  const long long expiry = lt::stat_of(path).st_mtim.tv_sec;
  ::kill(holder.pid(), SIGKILL);
  ASSERT_TRUE(holder.wait_exit().has_value());

  LinkLockOptions opts;
  opts.clock_slop = 1s;
  LinkLock waiter(path, opts);
  ASSERT_TRUE(waiter.try_lock_for(10s));
  EXPECT_GT(std::chrono::system_clock::now(),
            std::chrono::system_clock::time_point(std::chrono::seconds(expiry + 1)));
  EXPECT_EQ(lt::read_file(path), waiter.claim_path());
  EXPECT_FALSE(fs::exists(dead_claim));
  waiter.unlock();
}

TEST(LinkLockMultiprocess, RefreshingHolderIsNeverBroken) {
  TempDir dir;
  const fs::path path = dir / "res.lock";
  Subprocess holder;
  ASSERT_NO_THROW(
      holder = Subprocess::fork([&](Channel& parent) { return holder_role(path, 1s, parent); }));
  const auto line = holder.read_line().value_or("");
  ASSERT_EQ(line.rfind("LOCKED ", 0), 0u) << line;
  const std::string claim = line.substr(7);

  // The waiter waits well past lifetime + slop in another process while the holder refreshes.
  Subprocess waiter;
  ASSERT_NO_THROW(waiter = Subprocess::fork([&](Channel& parent) {
                    LinkLockOptions opts;
                    opts.clock_slop = 1s;
                    LinkLock lock(path, opts);
                    const auto t0 = Clock::now();
                    const std::error_code ec =
                        lock.acquire(LockMode::exclusive, Clock::now() + 3500ms);
                    const auto waited =
                        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0);
                    parent.send((ec == make_error_code(errc::timeout) ? "TIMEOUT " : "GOT ") +
                                std::to_string(waited.count()));
                    return 0;
                  }));
  std::string result;
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(holder.send("refresh"));
    ASSERT_EQ(holder.read_line().value_or(""), "OK");
    if (auto r = waiter.read_line(200ms)) {
      result = *r;
      break;
    }
  }
  ASSERT_EQ(result.rfind("TIMEOUT ", 0), 0u) << result;
  EXPECT_GE(std::stol(result.substr(8)), 3500);
  EXPECT_EQ(lt::read_file(path), claim);
  ASSERT_TRUE(holder.send("release"));
  EXPECT_EQ(holder.read_line().value_or(""), "RELEASED");
  EXPECT_FALSE(fs::exists(path));
}

TEST(LinkLockMultiprocess, LiveButExpiredHolderIsBrokenAndLearnsItOnRelease) {
  TempDir dir;
  const fs::path path = dir / "res.lock";
  Subprocess holder;
  ASSERT_NO_THROW(
      holder = Subprocess::fork([&](Channel& parent) { return holder_role(path, 1s, parent); }));
  ASSERT_EQ(holder.read_line().value_or("").rfind("LOCKED ", 0), 0u);
  const long long expiry = lt::stat_of(path).st_mtim.tv_sec;
  LinkLockOptions opts;
  opts.clock_slop = 2s;
  LinkLock waiter(path, opts);
  ASSERT_TRUE(waiter.try_lock_for(10s));
  // Clock slop honoured: not before expiry + 2 s.
  EXPECT_GT(std::chrono::system_clock::now(),
            std::chrono::system_clock::time_point(std::chrono::seconds(expiry + 2)));
  ASSERT_TRUE(holder.send("refresh"));
  EXPECT_EQ(holder.read_line().value_or(""), "FAIL");
  ASSERT_TRUE(holder.send("release"));
  EXPECT_EQ(holder.read_line().value_or(""), make_error_code(errc::lock_lost).message());
  EXPECT_EQ(lt::read_file(path), waiter.claim_path());  // the new holder is untouched
  waiter.unlock();
}

// Many waiters breaking one dead holder's lock at once (clock slop 0, a short lifetime): only one
// of them may get it. Each round the holder (whoever is inside) is SIGKILLed; the waiters wake at
// the same instant, all judge the lock expired, and all try to break it. Two holders (occupancy 2
// here) came from two bugs: a waiter that had waited longer than the lifetime linked a claim whose
// expiry had already passed, so the next breaker rightly broke the fresh lock (this test fails on
// that with occupancy up to 6); and a breaker that had judged the dead lock could unlink the fresh
// lock of another breaker that had just broken it (a window of microseconds, now closed by the
// break lock).
TEST(LinkLockMultiprocess, ConcurrentBreakersOfADeadHolderAdmitOnlyOne) {
  TempDir dir;
  const fs::path path = dir / "res.lock";
  Shared* shared = map_shared();
  ASSERT_NE(shared, nullptr);
  constexpr int kProcs = 6;
  constexpr int kRounds = 25;
  // Which child is inside (set by it after entering, cleared by us after killing it).
  static_assert(kProcs <= 8);
  auto* inside = static_cast<std::atomic<int>*>(::mmap(nullptr, sizeof(std::atomic<int>) * 8,
                                                       PROT_READ | PROT_WRITE,
                                                       MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(inside, MAP_FAILED);
  for (int i = 0; i < 8; ++i) new (&inside[i]) std::atomic<int>(0);

  const auto spawn = [&](int slot) {
    return Subprocess::fork([&, slot](Channel&) {
      LinkLockOptions opts;
      opts.lifetime = 200ms;
      opts.clock_slop = 0ms;
      LinkLock lock(path, opts);
      if (lock.acquire(LockMode::exclusive, Clock::now() + 60s)) {
        shared->errors++;
        return 1;
      }
      const auto occ = ++shared->occupancy;
      auto seen = shared->max_occupancy.load();
      while (occ > seen && !shared->max_occupancy.compare_exchange_weak(seen, occ)) {
      }
      inside[slot] = 1;
      shared->entries++;
      for (;;) ::pause();  // hold until killed
    });
  };
  std::vector<Subprocess> kids;
  for (int i = 0; i < kProcs; ++i) ASSERT_NO_THROW(kids.push_back(spawn(i)));
  std::int64_t entries = 0;
  for (int round = 0; round < kRounds; ++round) {
    // Wait for the next holder (the lock expires 200 ms after it was taken), then give a second,
    // wrongly admitted breaker time to enter too.
    const auto until = Clock::now() + 10s;
    while (shared->entries.load() == entries && Clock::now() < until) ::usleep(1000);
    ASSERT_GT(shared->entries.load(), entries) << "no holder in round " << round;
    ::usleep(50000);
    entries = shared->entries.load();
    for (int i = 0; i < kProcs; ++i) {
      if (inside[i].load() == 0) continue;
      kids[static_cast<std::size_t>(i)].kill(SIGKILL);
      inside[i] = 0;
      --shared->occupancy;
      ASSERT_NO_THROW(kids[static_cast<std::size_t>(i)] = spawn(i));
    }
  }
  for (auto& k : kids) k.kill(SIGKILL);
  EXPECT_EQ(shared->errors.load(), 0);
  EXPECT_EQ(shared->max_occupancy.load(), 1) << "two holders after a holder was killed";
  EXPECT_GE(shared->entries.load(), kRounds);
  ::munmap(inside, sizeof(std::atomic<int>) * 8);
  ::munmap(shared, sizeof(Shared));
}

TEST(LinkLockMultiprocess, ForkedChildDoesNotReleaseTheParentsLock) {
  TempDir dir;
  const fs::path path = dir / "res.lock";
  LinkLock lock(path);
  lock.lock();
  const std::string claim = lock.claim_path();
  Subprocess child;
  ASSERT_NO_THROW(
      child = Subprocess::fork([&](Channel& parent) {
        const bool not_locked = lock.release() == make_error_code(errc::not_locked);
        // A fresh claim with the child's pid, and the lock is busy (held by the parent).
        const bool busy = !lock.try_lock();
        const bool fresh =
            lock.claim_path() != claim &&
            lock.claim_path().find("|" + std::to_string(::getpid()) + "|") != std::string::npos;
        parent.send(std::string(not_locked ? "1" : "0") + (busy ? "1" : "0") + (fresh ? "1" : "0"));
        // The child _exits without unwinding: run the destructor of its copy explicitly. It removes
        // only the child's own claim, never the parent's lock.
        std::destroy_at(&lock);
        return 0;
      }));
  EXPECT_EQ(child.read_line().value_or(""), "111");
  ASSERT_TRUE(child.wait_exit().has_value());
  EXPECT_EQ(lt::read_file(path), claim);
  EXPECT_TRUE(fs::exists(claim));
  EXPECT_TRUE(lock.is_locked());
  EXPECT_EQ(lt::claim_files(dir.path(), "res.lock").size(), 1u);
  lock.unlock();
}

}  // namespace
