// Uncontended lock throughput, locksmith side by side with the raw system calls it wraps.
//
//  fd/*    lock + unlock on an fd that stays open (locksmith::lock/unlock vs flock(2)/fcntl(2)).
//  path/*  open + lock + unlock + close of a path (FileLock vs open(2)/flock(2)/close(2)); and
//          AutoLock, which also checks the mount (see BM_path_autolock_constructed).
//
// Every locksmith benchmark has a raw twin in this binary; bench/compare.py turns the pairs into
// ratios. Nothing else holds the files, so every lock call succeeds at once.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "bench_support.hpp"
#include "locksmith/auto_lock.hpp"
#include "locksmith/file_lock.hpp"
#include "locksmith/lock.hpp"

namespace {

using locksmith::Backend;
using locksmith::LockFlags;
namespace bench = locksmith::bench;

// An fd on a per-benchmark file in the bench directory, open for the whole benchmark.
class OpenFile {
 public:
  explicit OpenFile(const std::string& name) : fd_(bench::raw_open(bench::bench_dir() / name)) {}
  ~OpenFile() {
    if (fd_ >= 0) ::close(fd_);
  }
  OpenFile(const OpenFile&) = delete;
  OpenFile& operator=(const OpenFile&) = delete;
  int get() const noexcept { return fd_; }

 private:
  int fd_;
};

int raw_fcntl(int fd, int cmd, short type) noexcept {
  struct flock fl {};
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  fl.l_start = 0;
  fl.l_len = 0;
  return ::fcntl(fd, cmd, &fl);
}

// --- 1. lock + unlock on an open fd ---------------------------------------------------------

void BM_fd_raw_flock(benchmark::State& state) {
  const OpenFile file("fd_flock");
  const int fd = file.get();
  for (auto _ : state) {
    if (::flock(fd, LOCK_EX) != 0 || ::flock(fd, LOCK_UN) != 0) {
      state.SkipWithError("flock failed");
      break;
    }
  }
}
BENCHMARK(BM_fd_raw_flock)->UseRealTime();

void BM_fd_locksmith_flock(benchmark::State& state) {
  const OpenFile file("fd_flock");
  const int fd = file.get();
  for (auto _ : state) {
    if (locksmith::lock(fd, LockFlags::exclusive) || locksmith::unlock(fd)) {
      state.SkipWithError("locksmith::lock failed");
      break;
    }
  }
}
BENCHMARK(BM_fd_locksmith_flock)->UseRealTime();

// What portalocker's Lock does on every attempt: LOCK_EX | LOCK_NB.
void BM_fd_raw_flock_nb(benchmark::State& state) {
  const OpenFile file("fd_flock");
  const int fd = file.get();
  for (auto _ : state) {
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0 || ::flock(fd, LOCK_UN) != 0) {
      state.SkipWithError("flock failed");
      break;
    }
  }
}
BENCHMARK(BM_fd_raw_flock_nb)->UseRealTime();

void BM_fd_locksmith_flock_nb(benchmark::State& state) {
  const OpenFile file("fd_flock");
  const int fd = file.get();
  for (auto _ : state) {
    if (locksmith::lock(fd, LockFlags::exclusive | LockFlags::non_blocking) ||
        locksmith::unlock(fd)) {
      state.SkipWithError("locksmith::lock failed");
      break;
    }
  }
}
BENCHMARK(BM_fd_locksmith_flock_nb)->UseRealTime();

void BM_fd_raw_fcntl_posix(benchmark::State& state) {
  const OpenFile file("fd_posix");
  const int fd = file.get();
  for (auto _ : state) {
    if (raw_fcntl(fd, F_SETLKW, F_WRLCK) != 0 || raw_fcntl(fd, F_SETLK, F_UNLCK) != 0) {
      state.SkipWithError("fcntl failed");
      break;
    }
  }
}
BENCHMARK(BM_fd_raw_fcntl_posix)->UseRealTime();

void BM_fd_locksmith_posix(benchmark::State& state) {
  const OpenFile file("fd_posix");
  const int fd = file.get();
  for (auto _ : state) {
    if (locksmith::lock(fd, LockFlags::exclusive, Backend::posix) ||
        locksmith::unlock(fd, Backend::posix)) {
      state.SkipWithError("locksmith::lock failed");
      break;
    }
  }
}
BENCHMARK(BM_fd_locksmith_posix)->UseRealTime();

#if defined(F_OFD_SETLK)
void BM_fd_raw_fcntl_ofd(benchmark::State& state) {
  const OpenFile file("fd_ofd");
  const int fd = file.get();
  for (auto _ : state) {
    if (raw_fcntl(fd, F_OFD_SETLKW, F_WRLCK) != 0 || raw_fcntl(fd, F_OFD_SETLK, F_UNLCK) != 0) {
      state.SkipWithError("fcntl failed");
      break;
    }
  }
}
BENCHMARK(BM_fd_raw_fcntl_ofd)->UseRealTime();

void BM_fd_locksmith_ofd(benchmark::State& state) {
  const OpenFile file("fd_ofd");
  const int fd = file.get();
  for (auto _ : state) {
    if (locksmith::lock(fd, LockFlags::exclusive, Backend::ofd) ||
        locksmith::unlock(fd, Backend::ofd)) {
      state.SkipWithError("locksmith::lock failed");
      break;
    }
  }
}
BENCHMARK(BM_fd_locksmith_ofd)->UseRealTime();
#endif

// --- 2. open + lock + unlock + close of a path ---------------------------------------------

void BM_path_raw_flock(benchmark::State& state) {
  const std::filesystem::path path = bench::bench_dir() / "path_flock";
  for (auto _ : state) {
    const int fd = bench::raw_open(path);
    if (fd < 0 || ::flock(fd, LOCK_EX) != 0 || ::flock(fd, LOCK_UN) != 0) {
      state.SkipWithError("open/flock failed");
      break;
    }
    ::close(fd);
  }
}
BENCHMARK(BM_path_raw_flock)->UseRealTime();

// One FileLock reused: every lock() reopens the path, every unlock() closes it.
void BM_path_filelock_reused(benchmark::State& state) {
  locksmith::FileLock lock(bench::bench_dir() / "path_flock");
  for (auto _ : state) {
    lock.lock();
    lock.unlock();
  }
}
BENCHMARK(BM_path_filelock_reused)->UseRealTime();

// A FileLock constructed (path copied) and destroyed on every iteration.
void BM_path_filelock_constructed(benchmark::State& state) {
  const std::filesystem::path path = bench::bench_dir() / "path_flock";
  for (auto _ : state) {
    locksmith::FileLock lock(path);
    lock.lock();
    lock.unlock();
  }
}
BENCHMARK(BM_path_filelock_constructed)->UseRealTime();

// The non-throwing calls, for comparison with lock()/unlock().
void BM_path_filelock_acquire(benchmark::State& state) {
  locksmith::FileLock lock(bench::bench_dir() / "path_flock");
  for (auto _ : state) {
    if (lock.acquire(locksmith::LockMode::exclusive, locksmith::kForever) || lock.release()) {
      state.SkipWithError("FileLock::acquire failed");
      break;
    }
  }
}
BENCHMARK(BM_path_filelock_acquire)->UseRealTime();

// AutoLock constructed on every iteration, as `auto:` specs and `locksmith run` use it: the
// first acquire identifies the mount and reads the saved verdicts (check_mount), which this
// process caches until the mount table or the verdict file changes; "unchecked" skips that.
void autolock_constructed(benchmark::State& state, bool check_mount) {
  const std::filesystem::path path = bench::bench_dir() / "path_flock";
  locksmith::AutoLockOptions options;
  options.check_mount = check_mount;
  options.verdicts = bench::bench_dir() / "no-verdicts";  // missing: an empty store
  for (auto _ : state) {
    locksmith::AutoLock lock(path, options);
    if (lock.acquire(locksmith::LockMode::exclusive, locksmith::kForever) || lock.release()) {
      state.SkipWithError("AutoLock::acquire failed");
      break;
    }
  }
}
void BM_path_autolock_constructed(benchmark::State& state) { autolock_constructed(state, true); }
BENCHMARK(BM_path_autolock_constructed)->UseRealTime();
void BM_path_autolock_unchecked(benchmark::State& state) { autolock_constructed(state, false); }
BENCHMARK(BM_path_autolock_unchecked)->UseRealTime();

// --- Paired loops: raw and locksmith alternating in blocks (see bench::run_paired) ----------

void BM_paired_fd_flock(benchmark::State& state) {
  const OpenFile file("paired_fd_flock");
  const int fd = file.get();
  bench::run_paired(
      state, 256, [fd] { return ::flock(fd, LOCK_EX) == 0 && ::flock(fd, LOCK_UN) == 0; },
      [fd] { return !locksmith::lock(fd, LockFlags::exclusive) && !locksmith::unlock(fd); });
}
BENCHMARK(BM_paired_fd_flock)->UseManualTime();

void BM_paired_fd_posix(benchmark::State& state) {
  const OpenFile file("paired_fd_posix");
  const int fd = file.get();
  bench::run_paired(
      state, 256,
      [fd] {
        return raw_fcntl(fd, F_SETLKW, F_WRLCK) == 0 && raw_fcntl(fd, F_SETLK, F_UNLCK) == 0;
      },
      [fd] {
        return !locksmith::lock(fd, LockFlags::exclusive, Backend::posix) &&
               !locksmith::unlock(fd, Backend::posix);
      });
}
BENCHMARK(BM_paired_fd_posix)->UseManualTime();

#if defined(F_OFD_SETLK)
void BM_paired_fd_ofd(benchmark::State& state) {
  const OpenFile file("paired_fd_ofd");
  const int fd = file.get();
  bench::run_paired(
      state, 256,
      [fd] {
        return raw_fcntl(fd, F_OFD_SETLKW, F_WRLCK) == 0 &&
               raw_fcntl(fd, F_OFD_SETLK, F_UNLCK) == 0;
      },
      [fd] {
        return !locksmith::lock(fd, LockFlags::exclusive, Backend::ofd) &&
               !locksmith::unlock(fd, Backend::ofd);
      });
}
BENCHMARK(BM_paired_fd_ofd)->UseManualTime();
#endif

bool raw_path_cycle(const std::filesystem::path& path) noexcept {
  const int fd = bench::raw_open(path);
  if (fd < 0) return false;
  const bool ok = ::flock(fd, LOCK_EX) == 0 && ::flock(fd, LOCK_UN) == 0;
  ::close(fd);
  return ok;
}

void BM_paired_path_filelock_reused(benchmark::State& state) {
  const std::filesystem::path path = bench::bench_dir() / "paired_path";
  locksmith::FileLock lock(path);
  bench::run_paired(
      state, 64, [&] { return raw_path_cycle(path); },
      [&] {
        lock.lock();
        lock.unlock();
        return true;
      });
}
BENCHMARK(BM_paired_path_filelock_reused)->UseManualTime();

void BM_paired_path_filelock_constructed(benchmark::State& state) {
  const std::filesystem::path path = bench::bench_dir() / "paired_path";
  bench::run_paired(
      state, 64, [&] { return raw_path_cycle(path); },
      [&] {
        locksmith::FileLock lock(path);
        lock.lock();
        lock.unlock();
        return true;
      });
}
BENCHMARK(BM_paired_path_filelock_constructed)->UseManualTime();

}  // namespace
