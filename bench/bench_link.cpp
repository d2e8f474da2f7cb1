// LinkLock (flufl.lock protocol) benchmarks, on the benchmark scratch directory (a real disk).
//
// 1. Uncontended acquire + release cycle: LinkLock (kept claim: futimens + link, stat + unlink)
//    side by side with the raw system calls of the protocol's core, link + stat + unlink with a
//    kept claim file (BM_link_paired: ABBA blocks, counters raw_us / locksmith_us / ratio).
// 2. Wake-up latency of a waiter after the holder's release (inotify and backoff strategies):
//    a holder thread takes the lock, waits until the benchmark thread sleeps in try_lock_for(10 s)
//    (state 'S' in /proc), stamps steady_clock and releases; latency = the waiter's return time -
//    that stamp. The iteration time is the latency; counters p50_us / p90_us / p99_us / max_us.
//    Handoffs per run: $LOCKSMITH_BENCH_HANDOFFS (default 1000).
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "bench_support.hpp"
#include "locksmith/link_lock.hpp"

namespace {

using namespace std::chrono_literals;
using locksmith::Clock;
using locksmith::LinkLock;
using locksmith::LinkLockOptions;
using locksmith::LinkWait;
using locksmith::LockMode;
namespace bench = locksmith::bench;

constexpr auto kStepTimeout = 5s;

std::filesystem::path lock_path(const char* name) { return bench::bench_dir() / name; }

// The raw core of the protocol with a kept claim: link, stat (what release checks), unlink.
bool raw_cycle(const std::string& claim, const std::string& lockfile) {
  if (::link(claim.c_str(), lockfile.c_str()) != 0) return false;
  struct stat st {};
  if (::stat(lockfile.c_str(), &st) != 0) return false;
  return ::unlink(lockfile.c_str()) == 0;
}

bool make_raw_claim(const std::string& claim) {
  const int fd = ::open(claim.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  const bool ok = ::write(fd, claim.data(), claim.size()) == static_cast<ssize_t>(claim.size());
  ::close(fd);
  return ok;
}

void BM_link_raw_cycle(benchmark::State& state) {
  const std::string lockfile = lock_path("raw.lock").string();
  const std::string claim = lockfile + "|bench|1|1";
  if (!make_raw_claim(claim)) return state.SkipWithError("cannot create claim");
  for (auto _ : state) {
    if (!raw_cycle(claim, lockfile)) return state.SkipWithError("raw cycle failed");
  }
  ::unlink(claim.c_str());
  state.SetLabel(bench::filesystem_name(bench::bench_dir()));
}
BENCHMARK(BM_link_raw_cycle)->UseRealTime();

void BM_link_locksmith_cycle(benchmark::State& state) {
  LinkLock lock(lock_path("ours.lock"));
  for (auto _ : state) {
    if (lock.acquire(LockMode::exclusive, Clock::time_point::min()) || lock.release()) {
      return state.SkipWithError("LinkLock cycle failed");
    }
  }
  state.SetLabel(bench::filesystem_name(bench::bench_dir()));
}
BENCHMARK(BM_link_locksmith_cycle)->UseRealTime();

void BM_link_paired(benchmark::State& state) {
  const std::string lockfile = lock_path("paired_raw.lock").string();
  const std::string claim = lockfile + "|bench|1|1";
  if (!make_raw_claim(claim)) return state.SkipWithError("cannot create claim");
  LinkLock lock(lock_path("paired_ours.lock"));
  bench::run_paired(
      state, 200, [&] { return raw_cycle(claim, lockfile); },
      [&] {
        return !lock.acquire(LockMode::exclusive, Clock::time_point::min()) && !lock.release();
      });
  ::unlink(claim.c_str());
}
BENCHMARK(BM_link_paired)->UseManualTime()->Iterations(50);

bool thread_sleeping(pid_t tid) {
  const std::string p = "/proc/self/task/" + std::to_string(tid) + "/stat";
  const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char buf[512];
  const ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return false;
  buf[n] = '\0';
  const char* paren = std::strrchr(buf, ')');
  return paren != nullptr && paren[1] == ' ' && paren[2] == 'S';
}

int handoffs() {
  const char* env = std::getenv("LOCKSMITH_BENCH_HANDOFFS");
  const int n = env != nullptr ? std::atoi(env) : 1000;
  return n > 0 ? n : 1000;
}

void wakeup(benchmark::State& state, LinkWait wait) {
  const auto path = lock_path(wait == LinkWait::backoff ? "wake_backoff.lock" : "wake_notify.lock");
  const pid_t waiter_tid = static_cast<pid_t>(::syscall(SYS_gettid));
  std::mutex mutex;
  std::condition_variable cv;
  bool requested = false;
  bool held = false;
  bool stop = false;
  std::string error;
  std::atomic<Clock::rep> released_at{0};
  std::thread holder([&] {
    LinkLock lock(path);
    std::unique_lock<std::mutex> guard(mutex);
    for (;;) {
      cv.wait(guard, [&] { return requested || stop; });
      if (stop) return;
      requested = false;
      if (lock.acquire(LockMode::exclusive, Clock::now() + kStepTimeout)) {
        error = "holder could not lock";
        cv.notify_all();
        return;
      }
      held = true;
      cv.notify_all();
      guard.unlock();
      // Wait until the waiter sleeps in its timed wait (bounded).
      const auto until = Clock::now() + kStepTimeout;
      std::this_thread::sleep_for(100us);
      while (!thread_sleeping(waiter_tid) && Clock::now() < until) std::this_thread::yield();
      released_at.store(Clock::now().time_since_epoch().count(), std::memory_order_release);
      lock.release();
      guard.lock();
    }
  });
  LinkLockOptions opts;
  opts.wait = wait;
  LinkLock lock(path, opts);
  std::vector<double> lat;
  lat.reserve(static_cast<std::size_t>(handoffs()));
  for (auto _ : state) {
    {
      std::unique_lock<std::mutex> guard(mutex);
      held = false;
      requested = true;
      cv.notify_all();
      if (!cv.wait_for(guard, kStepTimeout, [&] { return held || !error.empty(); }) ||
          !error.empty()) {
        state.SkipWithError("holder failed");
        break;
      }
    }
    if (!lock.try_lock_for(10s)) {
      state.SkipWithError("waiter timed out");
      break;
    }
    const auto end = Clock::now();
    const auto start =
        Clock::time_point(Clock::duration(released_at.load(std::memory_order_acquire)));
    const double us = std::chrono::duration<double, std::micro>(end - start).count();
    lat.push_back(us);
    state.SetIterationTime(us * 1e-6);
    lock.release();
  }
  {
    std::lock_guard<std::mutex> guard(mutex);
    stop = true;
  }
  cv.notify_all();
  holder.join();
  bench::report_percentiles(state, lat);
  state.SetLabel(bench::filesystem_name(bench::bench_dir()));
}

void BM_link_wakeup_notify(benchmark::State& state) { wakeup(state, LinkWait::notify); }
void BM_link_wakeup_backoff(benchmark::State& state) { wakeup(state, LinkWait::backoff); }
BENCHMARK(BM_link_wakeup_notify)->UseManualTime()->Iterations(handoffs());
BENCHMARK(BM_link_wakeup_backoff)->UseManualTime()->Iterations(std::min(handoffs(), 200));

}  // namespace
