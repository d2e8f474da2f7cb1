// Shared helpers of the locksmith benchmarks: where the benchmark files live, raw open/close for
// the raw-C twins, and the common main() that records the machine context.
#pragma once

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

namespace locksmith::bench {

// A fresh directory for this run's files, created on first use under $LOCKSMITH_BENCH_DIR or, by
// default, the benchmark build directory (a real disk, unlike a tmpfs /tmp). Removed at exit.
const std::filesystem::path& bench_dir();

// The filesystem type of `p` as statfs(2) reports it ("ext4/ext3/ext2", "tmpfs", ...).
std::string filesystem_name(const std::filesystem::path& p);

// Flags of the raw-C open in the benchmarks (what FileLock does, minus O_APPEND/O_NOCTTY).
inline constexpr const char* kRawOpenFlagsText = "O_RDWR|O_CREAT|O_CLOEXEC|O_NOFOLLOW";

// Sorts `us` (latencies in µs) and sets the counters PREFIXp50_us, p90_us, p99_us and max_us.
void report_percentiles(benchmark::State& state, std::vector<double>& us,
                        const std::string& prefix = "");

// open(path, O_RDWR|O_CREAT|O_CLOEXEC|O_NOFOLLOW, 0644); -1 with errno on failure.
int raw_open(const std::filesystem::path& path) noexcept;

// The paired comparison used where the machine is noisy: one benchmark loop runs a block of
// `block` raw operations and a block of locksmith operations per iteration, in ABBA order, each
// block timed on its own, so both sides see the same load. Counters: raw_us and locksmith_us
// (median per-operation time over the blocks) and ratio = raw_us / locksmith_us (>= 1: locksmith
// is as fast as raw). The iteration time is the time of both blocks. `raw` and `ours` return
// false on failure.
template <class Raw, class Ours>
void run_paired(benchmark::State& state, int block, Raw&& raw, Ours&& ours) {
  std::vector<double> raw_us;
  std::vector<double> ours_us;
  long pair = 0;
  const auto timed_block = [&](bool do_raw, double& us_per_op) {
    const auto t0 = std::chrono::steady_clock::now();
    bool ok = true;
    for (int i = 0; i < block && ok; ++i) ok = do_raw ? raw() : ours();
    us_per_op =
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() /
        block;
    return ok;
  };
  for (auto _ : state) {
    const bool raw_first = (pair++ / 2) % 2 == 0;  // ABBA: R O O R R O O R ...
    double first = 0;
    double second = 0;
    if (!timed_block(raw_first, first) || !timed_block(!raw_first, second)) {
      state.SkipWithError("operation failed");
      break;
    }
    raw_us.push_back(raw_first ? first : second);
    ours_us.push_back(raw_first ? second : first);
    state.SetIterationTime((first + second) * block * 1e-6);
  }
  if (raw_us.empty()) return;
  const auto median = [](std::vector<double>& v) {
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2), v.end());
    return v[v.size() / 2];
  };
  const double raw_median = median(raw_us);
  const double ours_median = median(ours_us);
  state.counters["raw_us"] = raw_median;
  state.counters["locksmith_us"] = ours_median;
  state.counters["ratio"] = raw_median / ours_median;
}

}  // namespace locksmith::bench
