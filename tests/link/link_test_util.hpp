// Helpers of the LinkLock tests: files, times and claim files. (Child processes come from
// tests/support/subprocess.hpp.)
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <filesystem>
#include <string>
#include <vector>

namespace locksmith::linktest {

inline std::string read_file(const std::filesystem::path& p) {
  std::string s;
  const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return s;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    s.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return s;
}

inline struct stat stat_of(const std::filesystem::path& p) {
  struct stat st {};
  ::stat(p.c_str(), &st);
  return st;
}

// Sets the mtime (and atime) of `p` to `t` seconds since the epoch.
inline bool set_mtime(const std::filesystem::path& p, long long t) {
  struct timespec ts[2]{};
  ts[0].tv_sec = static_cast<time_t>(t);
  ts[1].tv_sec = static_cast<time_t>(t);
  return ::utimensat(AT_FDCWD, p.c_str(), ts, 0) == 0;
}

inline long long now_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The claim files (names starting with "<lockname>|") in `dir`.
inline std::vector<std::filesystem::path> claim_files(const std::filesystem::path& dir,
                                                      const std::string& lockname) {
  std::vector<std::filesystem::path> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(lockname + "|", 0) == 0) out.push_back(e.path());
  }
  return out;
}

}  // namespace locksmith::linktest
