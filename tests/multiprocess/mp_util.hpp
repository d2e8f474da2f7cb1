// Small helpers shared by the multi-process tests and their child roles.
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>

#include "locksmith/lock.hpp"

namespace locksmith::mp {

inline Backend parse_backend(std::string_view name) {
  if (name == "flock") return Backend::flock;
  if (name == "posix") return Backend::posix;
  if (name == "ofd") return Backend::ofd;
  throw std::invalid_argument("unknown backend " + std::string(name));
}

inline LockMode parse_mode(std::string_view mode) {
  return mode == "sh" ? LockMode::shared : LockMode::exclusive;
}

// Counters in a file mapped MAP_SHARED by every process that opens it: clock-free evidence of
// how many processes were inside a critical section at once. Lock-free 64-bit atomics on shared
// memory work across processes.
class SharedCounters {
 public:
  static constexpr std::size_t kSlots = 64;

  // Creates (zero-filled) the backing file.
  static void create(const std::filesystem::path& path) {
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) throw std::runtime_error("cannot create " + path.string());
    const bool sized = ::ftruncate(fd, static_cast<off_t>(kBytes)) == 0;
    ::close(fd);
    if (!sized) throw std::runtime_error("cannot size " + path.string());
  }

  explicit SharedCounters(const std::filesystem::path& path) {
    static_assert(std::atomic_ref<std::int64_t>::is_always_lock_free);
    const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) return;
    void* p = ::mmap(nullptr, kBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ::close(fd);
    if (p != MAP_FAILED) words_ = static_cast<std::int64_t*>(p);
  }
  ~SharedCounters() {
    if (words_ != nullptr) ::munmap(words_, kBytes);
  }
  SharedCounters(const SharedCounters&) = delete;
  SharedCounters& operator=(const SharedCounters&) = delete;

  bool ok() const { return words_ != nullptr; }
  // Processes inside the critical section now.
  std::atomic_ref<std::int64_t> occupancy() { return std::atomic_ref<std::int64_t>(words_[0]); }
  // The largest occupancy anyone saw.
  std::atomic_ref<std::int64_t> max_occupancy() { return std::atomic_ref<std::int64_t>(words_[1]); }
  // How often worker `i` got in.
  std::atomic_ref<std::int64_t> entries(std::size_t i) {
    return std::atomic_ref<std::int64_t>(words_[2 + i]);
  }

 private:
  static constexpr std::size_t kBytes = (kSlots + 2) * sizeof(std::int64_t);
  std::int64_t* words_ = nullptr;
};

}  // namespace locksmith::mp
