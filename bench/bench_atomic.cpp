// Durable atomic replace of a 4 KiB file: AtomicFile (Publish::replace) vs the raw system calls
// (open temp O_CREAT|O_EXCL, write, fsync, rename, close, open dir, fsync dir, close).
//
// The files live in the bench directory, which must be on a real disk for the fsyncs to mean
// anything (the context line locksmith_bench_fs says which filesystem it was). The *_nosync
// pair skips both fsyncs and shows the CPU-side overhead alone. The paired_* benchmarks alternate
// the two in one loop, which is the fairer comparison on a disk shared with other work.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "bench_support.hpp"
#include "locksmith/atomic_file.hpp"

namespace {

namespace bench = locksmith::bench;

constexpr std::size_t kPayloadSize = 4096;

const std::string& payload() {
  static const std::string data(kPayloadSize, 'x');
  return data;
}

bool write_all(int fd, std::string_view data) noexcept {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) return false;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

// The raw-C sequence; `counter` makes the temporary name unique without a random number.
bool raw_replace(const std::filesystem::path& dir, const std::string& dest, unsigned long counter,
                 bool sync) noexcept {
  char temp[4096];
  std::snprintf(temp, sizeof temp, "%s/.%s.%lu.tmp", dir.c_str(), dest.c_str(), counter);
  const std::string final_path = (dir / dest).string();
  const int fd = ::open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) return false;
  bool ok = write_all(fd, payload()) && (!sync || ::fsync(fd) == 0) &&
            ::rename(temp, final_path.c_str()) == 0;
  ::close(fd);
  if (!ok) {
    ::unlink(temp);
    return false;
  }
  if (sync) {
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ok = dfd >= 0 && ::fsync(dfd) == 0;
    if (dfd >= 0) ::close(dfd);
  }
  return ok;
}

void raw_bench(benchmark::State& state, bool sync) {
  const std::filesystem::path& dir = bench::bench_dir();
  const std::string dest = sync ? "atomic_raw" : "atomic_raw_nosync";
  unsigned long counter = 0;
  for (auto _ : state) {
    if (!raw_replace(dir, dest, ++counter, sync)) {
      state.SkipWithError("raw atomic replace failed");
      break;
    }
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * kPayloadSize));
}

void locksmith_bench(benchmark::State& state, bool sync) {
  const std::filesystem::path dest =
      bench::bench_dir() / (sync ? "atomic_locksmith" : "atomic_locksmith_nosync");
  locksmith::AtomicOptions options;
  options.publish = locksmith::Publish::replace;
  options.sync = sync;
  for (auto _ : state) {
    locksmith::AtomicFile file = locksmith::AtomicFile::create(dest, options);
    file.write(payload());
    file.commit();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * kPayloadSize));
}

// Raw and AtomicFile alternately in one loop (bench::run_paired, one operation per block): on a
// disk shared with other work both sides then see the same conditions.
void paired_bench(benchmark::State& state, bool sync) {
  const std::filesystem::path& dir = bench::bench_dir();
  const std::string raw_dest = sync ? "paired_raw" : "paired_raw_nosync";
  const std::filesystem::path ours_dest =
      dir / (sync ? "paired_locksmith" : "paired_locksmith_nosync");
  locksmith::AtomicOptions options;
  options.publish = locksmith::Publish::replace;
  options.sync = sync;
  unsigned long counter = 0;
  bench::run_paired(
      state, 1, [&] { return raw_replace(dir, raw_dest, ++counter, sync); },
      [&] {
        locksmith::AtomicFile file = locksmith::AtomicFile::create(ours_dest, options);
        file.write(payload());
        file.commit();
        return true;
      });
}

void BM_atomic_raw_replace(benchmark::State& state) { raw_bench(state, true); }
void BM_atomic_locksmith_replace(benchmark::State& state) { locksmith_bench(state, true); }
void BM_atomic_raw_replace_nosync(benchmark::State& state) { raw_bench(state, false); }
void BM_atomic_locksmith_replace_nosync(benchmark::State& state) { locksmith_bench(state, false); }

BENCHMARK(BM_atomic_raw_replace)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_atomic_locksmith_replace)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_atomic_raw_replace_nosync)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_atomic_locksmith_replace_nosync)->UseRealTime()->Unit(benchmark::kMicrosecond);

void BM_atomic_paired_replace(benchmark::State& state) { paired_bench(state, true); }
void BM_atomic_paired_replace_nosync(benchmark::State& state) { paired_bench(state, false); }
BENCHMARK(BM_atomic_paired_replace)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_atomic_paired_replace_nosync)->UseManualTime()->Unit(benchmark::kMicrosecond);

}  // namespace
