// FileStore (gocept.filestore layout) benchmarks, on the benchmark scratch directory (a real disk).
//
// 1. BM_filestore_create_commit[_nosync]: create(unique_name()) + write 1 KiB + commit, i.e.
//    getrandom, open O_EXCL, write, fsync, renameat2 into new/, fsync new/ (the _nosync variant
//    skips both fsyncs: the CPU-side cost). Each run uses a fresh store; new/ grows as it runs.
// 2. BM_filestore_claim[_nosync]: claim(name) of a known message (one rename new/ -> cur/, then
//    fsync cur/), timed alone; the message is moved back outside the timed part.
// 3. BM_filestore_claim_next/BACKLOG: claim_next() with BACKLOG messages waiting in new/ (a
//    readdir + sort of new/ and one rename, no fsync), timed alone; the claimed message is moved
//    back outside the timed part so that the backlog stays constant.
#include <benchmark/benchmark.h>

#include <chrono>
#include <filesystem>
#include <string>

#include "bench_support.hpp"
#include "locksmith/filestore.hpp"

namespace {

namespace bench = locksmith::bench;
using locksmith::FileStore;

constexpr std::size_t kPayloadSize = 1024;

const std::string& payload() {
  static const std::string data(kPayloadSize, 'm');
  return data;
}

std::filesystem::path fresh_store_dir(const std::string& tag) {
  static int counter = 0;
  const std::filesystem::path dir =
      bench::bench_dir() / ("filestore_" + tag + "_" + std::to_string(++counter));
  std::filesystem::remove_all(dir);
  return dir;
}

void create_commit(benchmark::State& state, bool sync) {
  FileStore store(fresh_store_dir(sync ? "create" : "create_nosync"), 0644, sync);
  store.prepare();
  for (auto _ : state) {
    FileStore::Writer w = store.create(FileStore::unique_name());
    w.write(payload());
    w.commit();
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * kPayloadSize));
  std::filesystem::remove_all(store.path());
}

void claim_known(benchmark::State& state, bool sync) {
  FileStore store(fresh_store_dir(sync ? "claim" : "claim_nosync"), 0644, sync);
  store.prepare();
  FileStore::Writer w = store.create("message");
  w.write(payload());
  w.commit();
  FileStore mover(store.path(), 0644, false);
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    const bool won = store.claim("message", "bench");
    const auto t1 = std::chrono::steady_clock::now();
    if (!won) {
      state.SkipWithError("claim lost");
      break;
    }
    state.SetIterationTime(std::chrono::duration<double>(t1 - t0).count());
    mover.move("message", FileStore::kCur, FileStore::kNew);
  }
  state.SetItemsProcessed(state.iterations());
  std::filesystem::remove_all(store.path());
}

void BM_filestore_claim_next(benchmark::State& state) {
  const auto backlog = static_cast<int>(state.range(0));
  FileStore store(fresh_store_dir("claim_next"), 0644, /*sync=*/false);
  store.prepare();
  for (int i = 0; i < backlog; ++i) {
    FileStore::Writer w = store.create(FileStore::unique_name());
    w.write(payload());
    w.commit();
  }
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    const std::optional<std::string> name = store.claim_next("bench");
    const auto t1 = std::chrono::steady_clock::now();
    if (!name) {
      state.SkipWithError("nothing to claim");
      break;
    }
    state.SetIterationTime(std::chrono::duration<double>(t1 - t0).count());
    store.move(*name, FileStore::kCur, FileStore::kNew);
  }
  state.SetItemsProcessed(state.iterations());
  std::filesystem::remove_all(store.path());
}

void BM_filestore_create_commit(benchmark::State& state) { create_commit(state, true); }
void BM_filestore_create_commit_nosync(benchmark::State& state) { create_commit(state, false); }
void BM_filestore_claim(benchmark::State& state) { claim_known(state, true); }
void BM_filestore_claim_nosync(benchmark::State& state) { claim_known(state, false); }

BENCHMARK(BM_filestore_create_commit)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_filestore_create_commit_nosync)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_filestore_claim)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_filestore_claim_nosync)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_filestore_claim_next)
    ->Arg(1)
    ->Arg(100)
    ->Arg(1000)
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

}  // namespace
