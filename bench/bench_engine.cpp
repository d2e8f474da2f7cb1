// The verification engine's own costs: recording an event, checking a history, and the stress
// loop's throughput against a raw contended flock loop doing the same guarded-file work.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "bench_support.hpp"
#include "locksmith/harness/checkers.hpp"
#include "locksmith/harness/engine.hpp"
#include "locksmith/harness/history.hpp"

namespace locksmith::bench {
namespace {

using harness::Event;
using harness::EventType;

// 1. Recording: one event stored into the memory-mapped history file.
void BM_recorder_record(benchmark::State& state) {
  const auto path = bench_dir() / "bench-history.bin";
  std::filesystem::remove(path);
  harness::Recorder rec(path, std::size_t{1} << 24, {std::string(32, '0'), 0, 1});
  Event e;
  e.worker = 1;
  std::size_t n = 0;
  for (auto _ : state) {
    if (n == rec.capacity()) {
      state.SkipWithError("history full");
      break;
    }
    e.op = static_cast<std::uint32_t>(n++);
    e.time_ns = 0;  // the recorder reads CLOCK_MONOTONIC, as the workers do
    benchmark::DoNotOptimize(rec.record(e));
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(n));
  std::filesystem::remove(path);
}
BENCHMARK(BM_recorder_record);

// A valid history: 4 workers taking turns on an exclusive lock, 4 events per critical section.
harness::History synthetic_history(std::size_t sections) {
  harness::History h;
  h.info.kind = "flock";
  h.info.max_holders = 1;
  h.info.workers = 4;
  h.info.counter = true;
  h.events.reserve(sections * 4);
  std::uint64_t t = 1000;
  for (std::size_t i = 0; i < sections; ++i) {
    Event e;
    e.worker = static_cast<std::uint32_t>(i % 4);
    e.op = static_cast<std::uint32_t>(i / 4);
    e.magic = harness::kEventMagic;
    e.type = EventType::invoke;
    e.value = 2000000000;
    e.time_ns = t;
    h.events.push_back(e);
    e.type = EventType::ok;
    e.value = -1;
    e.time_ns = t + 100;
    h.events.push_back(e);
    e.type = EventType::release;
    e.value = static_cast<std::int64_t>(i);
    e.time_ns = t + 200;
    h.events.push_back(e);
    e.type = EventType::released;
    e.value = -1;
    e.time_ns = t + 300;
    h.events.push_back(e);
    t += 400;
  }
  return h;
}

// 2. Checking: all checkers over a history of N critical sections.
void BM_check_all(benchmark::State& state) {
  const auto sections = static_cast<std::size_t>(state.range(0));
  const harness::History h = synthetic_history(sections);
  for (auto _ : state) {
    const auto results = harness::check_all(h, static_cast<std::int64_t>(sections));
    for (const auto& r : results) {
      if (r.verdict == harness::Verdict::fail) state.SkipWithError("valid history flagged");
    }
    benchmark::DoNotOptimize(results.data());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * sections));
  state.counters["sections"] = static_cast<double>(sections);
}
BENCHMARK(BM_check_all)->Arg(100000)->Arg(1000000)->Unit(benchmark::kMillisecond);

std::chrono::milliseconds stress_time() {
  const char* v = std::getenv("LOCKSMITH_BENCH_STRESS_MS");
  return std::chrono::milliseconds(v ? std::atol(v) : 3000);
}

// The guarded-file work a harness worker does in each exclusive section: read the counter, write
// its witness, read it back, write counter + 1.
void guard_work(int guard) {
  char buf[64];
  const ssize_t n = ::pread(guard, buf, sizeof buf - 1, 0);
  buf[n > 0 ? n : 0] = '\0';
  const long long v = std::atoll(buf);
  char out[64];
  std::memset(out, ' ', sizeof out);
  std::snprintf(out, sizeof out, "%lld 1 1", v);
  (void)::pwrite(guard, out, sizeof out, 0);
  (void)::pread(guard, buf, sizeof buf - 1, 0);
  std::snprintf(out, sizeof out, "%lld 1 1", v + 1);
  (void)::pwrite(guard, out, sizeof out, 0);
}

// 3a. Raw contended loop: 4 processes, flock(LOCK_EX) / guarded work / flock(LOCK_UN).
//     open_per_cycle=1 also opens and closes the lock file each time, as FileLock does.
void BM_raw_contended_flock(benchmark::State& state) {
  const bool open_per_cycle = state.range(0) != 0;
  const auto lock = bench_dir() / "raw-contended.lock";
  const auto guard = bench_dir() / "raw-contended.guard";
  constexpr int kProcs = 4;
  for (auto _ : state) {
    auto* counts = static_cast<std::atomic<std::uint64_t>*>(
        ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
    const auto until = std::chrono::steady_clock::now() + stress_time();
    pid_t pids[kProcs];
    for (int p = 0; p < kProcs; ++p) {
      pids[p] = ::fork();
      if (pids[p] == 0) {
        int fd = open_per_cycle ? -1 : raw_open(lock);
        const int g = ::open(guard.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        std::uint64_t n = 0;
        while (std::chrono::steady_clock::now() < until) {
          if (open_per_cycle) fd = raw_open(lock);
          ::flock(fd, LOCK_EX);
          guard_work(g);
          ::flock(fd, LOCK_UN);
          if (open_per_cycle) ::close(fd);
          ++n;
        }
        counts[p].store(n);
        ::_exit(0);
      }
    }
    for (pid_t pid : pids) ::waitpid(pid, nullptr, 0);
    std::uint64_t total = 0;
    for (int p = 0; p < kProcs; ++p) total += counts[p].load();
    ::munmap(counts, 4096);
    const double secs = std::chrono::duration<double>(stress_time()).count();
    state.SetIterationTime(secs);
    state.counters["sections_per_s"] = static_cast<double>(total) / secs;
  }
}
BENCHMARK(BM_raw_contended_flock)
    ->ArgName("open_per_cycle")
    ->Arg(0)
    ->Arg(1)
    ->Iterations(1)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

// 3b. The same contention through `locksmith stress` (4 worker processes, hold 0): throughput
//     from the recorded history, first invoke to last release.
//     keep_open=1: the FileLock keeps its lock file open between acquisitions, like the raw
//     loop with open_per_cycle=0.
void BM_stress_flock(benchmark::State& state) {
  const bool keep_open = state.range(0) != 0;
  for (auto _ : state) {
    harness::StressOptions o;
    o.spec = "flock:" + (bench_dir() / "stress.lock").string() + (keep_open ? "?keep_open=1" : "");
    o.workers = 4;
    o.duration = stress_time();
    o.hold = std::chrono::microseconds(0);
    o.worker_exe = LOCKSMITH_BINARY;
    const harness::StressResult r = harness::run_stress(o);
    std::uint64_t first = UINT64_MAX;
    std::uint64_t last = 0;
    std::uint64_t sections = 0;
    for (const auto& e : r.history.events) {
      if (e.type == EventType::invoke) first = std::min(first, e.time_ns);
      if (e.type == EventType::release) {
        last = std::max(last, e.time_ns);
        ++sections;
      }
    }
    const double secs = last > first ? static_cast<double>(last - first) / 1e9 : 1;
    state.SetIterationTime(secs);
    state.counters["sections_per_s"] = static_cast<double>(sections) / secs;
    for (const auto& c : r.checks) {
      if (c.verdict == harness::Verdict::fail) state.SkipWithError("flock run flagged");
    }
  }
}
BENCHMARK(BM_stress_flock)
    ->ArgName("keep_open")
    ->Arg(0)
    ->Arg(1)
    ->Iterations(1)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace locksmith::bench
