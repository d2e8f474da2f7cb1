// Wake-up latency: how long after the holder releases does a blocked waiter return with the lock?
//
// A holder thread with its own open file description takes the lock; the benchmark thread then
// waits for it (raw blocking call, locksmith::lock, locksmith::lock_until with a 10 s deadline, or
// FileLock::try_lock_for(10 s)). The holder checks in /proc that the waiter really sleeps in the
// lock system call, takes a steady_clock timestamp immediately before its unlock call, and
// unlocks. Latency = the waiter's steady_clock time when its call returns - that timestamp.
//
// One benchmark iteration is one handoff (BM_wakeup_paired_*: one raw and one locksmith handoff,
// alternating, under the same holder); the iteration time is set manually to the latency, so
// the reported time is the mean latency, and the counters p50_us / p90_us / p99_us / max_us give
// the distribution. Handoffs per run: $LOCKSMITH_BENCH_HANDOFFS (default 1000).
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "bench_support.hpp"
#include "locksmith/file_lock.hpp"
#include "locksmith/lock.hpp"

namespace {

using namespace std::chrono_literals;
using locksmith::Backend;
using locksmith::Clock;
using locksmith::LockFlags;
using locksmith::LockMode;
namespace bench = locksmith::bench;

// Every wait in this file is bounded by this; a handoff never comes close.
constexpr auto kStepTimeout = 5s;

int raw_lock(int fd, Backend b, bool lock) noexcept {
  if (b == Backend::flock) return ::flock(fd, lock ? LOCK_EX : LOCK_UN);
  struct flock fl {};
  fl.l_type = lock ? F_WRLCK : F_UNLCK;
  fl.l_whence = SEEK_SET;
  return ::fcntl(fd, lock ? F_OFD_SETLKW : F_OFD_SETLK, &fl);
}

long lock_syscall(Backend b) noexcept { return b == Backend::flock ? SYS_flock : SYS_fcntl; }

// Watches one thread of this process through /proc/self/task/<tid>/{syscall,stat}.
class ThreadProbe {
 public:
  explicit ThreadProbe(pid_t tid) {
    const std::string dir = "/proc/self/task/" + std::to_string(tid) + "/";
    syscall_fd_ = ::open((dir + "syscall").c_str(), O_RDONLY | O_CLOEXEC);
    stat_fd_ = ::open((dir + "stat").c_str(), O_RDONLY | O_CLOEXEC);
  }
  ~ThreadProbe() {
    if (syscall_fd_ >= 0) ::close(syscall_fd_);
    if (stat_fd_ >= 0) ::close(stat_fd_);
  }
  ThreadProbe(const ThreadProbe&) = delete;
  ThreadProbe& operator=(const ThreadProbe&) = delete;

  bool usable() const noexcept { return syscall_fd_ >= 0 && stat_fd_ >= 0; }

  // True when the thread is asleep ('S') inside system call `nr`.
  bool sleeping_in(long nr) const noexcept {
    char buf[512];
    const ssize_t n = ::pread(syscall_fd_, buf, sizeof buf - 1, 0);
    if (n <= 0) return false;
    buf[n] = '\0';
    char* end = nullptr;
    const long got = std::strtol(buf, &end, 10);
    if (end == buf || got != nr) return false;  // "running", or another call
    const ssize_t m = ::pread(stat_fd_, buf, sizeof buf - 1, 0);
    if (m <= 0) return false;
    buf[m] = '\0';
    const char* paren = std::strrchr(buf, ')');  // the state follows "pid (comm) "
    return paren != nullptr && paren[1] == ' ' && paren[2] == 'S';
  }

 private:
  int syscall_fd_ = -1;
  int stat_fd_ = -1;
};

// The holder thread. Each handoff: the waiter asks for the lock to be taken (request), the holder
// takes it and says so (held), waits until the waiter sleeps in the lock call, stamps the time
// and unlocks.
class Holder {
 public:
  Holder(const std::filesystem::path& path, Backend backend, pid_t waiter_tid)
      : backend_(backend), waiter_tid_(waiter_tid), fd_(bench::raw_open(path)) {
    thread_ = std::thread([this] { run(); });
  }
  ~Holder() {
    {
      std::lock_guard<std::mutex> guard(mutex_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
    if (fd_ >= 0) ::close(fd_);
  }
  Holder(const Holder&) = delete;
  Holder& operator=(const Holder&) = delete;

  // Asks the holder to take the lock; returns once it holds it, or an error message.
  std::string take() {
    std::unique_lock<std::mutex> guard(mutex_);
    if (!error_.empty()) return error_;
    held_ = false;
    requested_ = true;
    cv_.notify_all();
    if (!cv_.wait_for(guard, kStepTimeout, [&] { return held_ || !error_.empty(); })) {
      return "holder did not take the lock";
    }
    return error_;
  }

  // The steady_clock time taken immediately before the last unlock.
  Clock::time_point released_at() const noexcept {
    return Clock::time_point(Clock::duration(released_at_.load(std::memory_order_acquire)));
  }
  // Handoffs where the holder could not see the waiter asleep and unlocked after kStepTimeout.
  std::string error() {
    std::lock_guard<std::mutex> guard(mutex_);
    return error_;
  }

 private:
  void fail(const char* what) {
    std::lock_guard<std::mutex> guard(mutex_);
    if (error_.empty()) error_ = what;
    cv_.notify_all();
  }

  void run() {
    const ThreadProbe probe(waiter_tid_);
    if (fd_ < 0 || !probe.usable()) {
      fail(fd_ < 0 ? "holder cannot open the lock file" : "cannot read /proc/self/task");
      return;
    }
    for (;;) {
      {
        std::unique_lock<std::mutex> guard(mutex_);
        cv_.wait(guard, [&] { return requested_ || stop_; });
        if (stop_) return;
        requested_ = false;
      }
      if (raw_lock(fd_, backend_, true) != 0) {
        fail("holder lock failed");
        return;
      }
      {
        std::lock_guard<std::mutex> guard(mutex_);
        held_ = true;
      }
      cv_.notify_all();
      // Wait (bounded) until the waiter sleeps in the kernel on our lock.
      const auto give_up = Clock::now() + kStepTimeout;
      bool asleep = false;
      while (!(asleep = probe.sleeping_in(lock_syscall(backend_))) && Clock::now() < give_up) {
        const timespec nap{0, 20'000};
        ::nanosleep(&nap, nullptr);
      }
      if (!asleep) fail("waiter never blocked in the lock call");
      released_at_.store(Clock::now().time_since_epoch().count(), std::memory_order_release);
      raw_lock(fd_, backend_, false);
    }
  }

  const Backend backend_;
  const pid_t waiter_tid_;
  const int fd_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool requested_ = false;
  bool held_ = false;
  bool stop_ = false;
  std::string error_;
  std::atomic<Clock::rep> released_at_{0};
  std::thread thread_;
};

// How the benchmark thread waits: acquire (blocking until the holder releases) and release.
struct Waiter {
  std::function<bool()> acquire;
  std::function<bool()> release;
};

int handoffs() {
  const char* env = std::getenv("LOCKSMITH_BENCH_HANDOFFS");
  const int n = env != nullptr ? std::atoi(env) : 0;
  return n > 0 ? n : 1000;
}

// One handoff: the holder takes the lock, `waiter` blocks until the holder releases it. Returns
// the wake-up latency in us, or a negative value after reporting an error to `state`.
double handoff(benchmark::State& state, Holder& holder, Waiter& waiter) {
  if (const std::string err = holder.take(); !err.empty()) {
    state.SkipWithError(err.c_str());
    return -1;
  }
  const bool ok = waiter.acquire();
  const auto returned = Clock::now();
  const auto latency = std::chrono::duration<double, std::micro>(returned - holder.released_at());
  if (!ok || !waiter.release()) {
    state.SkipWithError("waiter lock/unlock failed");
    return -1;
  }
  if (const std::string err = holder.error(); !err.empty()) {
    state.SkipWithError(err.c_str());
    return -1;
  }
  return latency.count();
}

using WaiterFactory = std::function<Waiter(const std::filesystem::path&)>;

void run_handoffs(benchmark::State& state, Backend backend, const std::string& file,
                  const WaiterFactory& make_waiter) {
  const std::filesystem::path path = bench::bench_dir() / file;
  Holder holder(path, backend, static_cast<pid_t>(::syscall(SYS_gettid)));
  Waiter waiter = make_waiter(path);
  std::vector<double> us;
  us.reserve(static_cast<std::size_t>(state.max_iterations));
  for (auto _ : state) {
    const double latency = handoff(state, holder, waiter);
    if (latency < 0) break;
    state.SetIterationTime(latency * 1e-6);
    us.push_back(latency);
  }
  bench::report_percentiles(state, us, "");
}

// Raw and locksmith waiters alternate (ABBA) under one holder, so both see the same scheduling
// conditions. Counters raw_p*_us are the raw waiter's, p*_us locksmith's; one iteration is one
// handoff of each.
void run_paired_handoffs(benchmark::State& state, Backend backend, const std::string& file,
                         const WaiterFactory& make_raw, const WaiterFactory& make_ours) {
  const std::filesystem::path path = bench::bench_dir() / file;
  Holder holder(path, backend, static_cast<pid_t>(::syscall(SYS_gettid)));
  Waiter raw = make_raw(path);
  Waiter ours = make_ours(path);
  std::vector<double> raw_us;
  std::vector<double> ours_us;
  long pair = 0;
  for (auto _ : state) {
    const bool raw_first = (pair++ / 2) % 2 == 0;
    const double first = handoff(state, holder, raw_first ? raw : ours);
    if (first < 0) break;
    const double second = handoff(state, holder, raw_first ? ours : raw);
    if (second < 0) break;
    raw_us.push_back(raw_first ? first : second);
    ours_us.push_back(raw_first ? second : first);
    state.SetIterationTime((first + second) * 1e-6);
  }
  bench::report_percentiles(state, raw_us, "raw_");
  bench::report_percentiles(state, ours_us, "");
}

// An fd-level waiter on its own open file description.
Waiter fd_waiter(const std::filesystem::path& path, std::function<bool(int)> acquire,
                 std::function<bool(int)> release) {
  const std::shared_ptr<int> fd(new int(bench::raw_open(path)), [](int* p) {
    if (*p >= 0) ::close(*p);
    delete p;
  });
  return {[fd, acquire] { return *fd >= 0 && acquire(*fd); },
          [fd, release] { return release(*fd); }};
}

Waiter raw_flock_waiter(const std::filesystem::path& p) {
  return fd_waiter(
      p, [](int fd) { return ::flock(fd, LOCK_EX) == 0; },
      [](int fd) { return ::flock(fd, LOCK_UN) == 0; });
}

Waiter lock_until_waiter(const std::filesystem::path& p) {
  return fd_waiter(
      p,
      [](int fd) {
        return !locksmith::lock_until(fd, LockMode::exclusive, Backend::flock, Clock::now() + 10s);
      },
      [](int fd) { return !locksmith::unlock(fd); });
}

Waiter try_lock_for_waiter(const std::filesystem::path& p) {
  auto lock = std::make_shared<locksmith::FileLock>(p);
  return Waiter{[lock] { return lock->try_lock_for(10s); }, [lock] { return !lock->release(); }};
}

void BM_wakeup_raw_flock(benchmark::State& state) {
  run_handoffs(state, Backend::flock, "wake_flock", raw_flock_waiter);
}

void BM_wakeup_locksmith_lock(benchmark::State& state) {
  run_handoffs(state, Backend::flock, "wake_flock", [](const std::filesystem::path& p) {
    return fd_waiter(
        p, [](int fd) { return !locksmith::lock(fd, LockFlags::exclusive); },
        [](int fd) { return !locksmith::unlock(fd); });
  });
}

void BM_wakeup_locksmith_lock_until(benchmark::State& state) {
  run_handoffs(state, Backend::flock, "wake_flock", lock_until_waiter);
}

void BM_wakeup_filelock_try_lock_for(benchmark::State& state) {
  run_handoffs(state, Backend::flock, "wake_flock", try_lock_for_waiter);
}

void BM_wakeup_paired_lock_until(benchmark::State& state) {
  run_paired_handoffs(state, Backend::flock, "wake_flock", raw_flock_waiter, lock_until_waiter);
}

void BM_wakeup_paired_try_lock_for(benchmark::State& state) {
  run_paired_handoffs(state, Backend::flock, "wake_flock", raw_flock_waiter, try_lock_for_waiter);
}

void BM_wakeup_raw_ofd(benchmark::State& state) {
  run_handoffs(state, Backend::ofd, "wake_ofd", [](const std::filesystem::path& p) {
    return fd_waiter(
        p, [](int fd) { return raw_lock(fd, Backend::ofd, true) == 0; },
        [](int fd) { return raw_lock(fd, Backend::ofd, false) == 0; });
  });
}

void BM_wakeup_locksmith_ofd_lock_until(benchmark::State& state) {
  run_handoffs(state, Backend::ofd, "wake_ofd", [](const std::filesystem::path& p) {
    return fd_waiter(
        p,
        [](int fd) {
          return !locksmith::lock_until(fd, LockMode::exclusive, Backend::ofd, Clock::now() + 10s);
        },
        [](int fd) { return !locksmith::unlock(fd, Backend::ofd); });
  });
}

const int kHandoffs = handoffs();

BENCHMARK(BM_wakeup_raw_flock)
    ->UseManualTime()
    ->Iterations(kHandoffs)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_wakeup_locksmith_lock)
    ->UseManualTime()
    ->Iterations(kHandoffs)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_wakeup_locksmith_lock_until)
    ->UseManualTime()
    ->Iterations(kHandoffs)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_wakeup_filelock_try_lock_for)
    ->UseManualTime()
    ->Iterations(kHandoffs)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_wakeup_raw_ofd)->UseManualTime()->Iterations(kHandoffs)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_wakeup_locksmith_ofd_lock_until)
    ->UseManualTime()
    ->Iterations(kHandoffs)
    ->Unit(benchmark::kMicrosecond);

BENCHMARK(BM_wakeup_paired_lock_until)
    ->UseManualTime()
    ->Iterations(kHandoffs)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_wakeup_paired_try_lock_for)
    ->UseManualTime()
    ->Iterations(kHandoffs)
    ->Unit(benchmark::kMicrosecond);

}  // namespace
