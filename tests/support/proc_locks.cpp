#include "proc_locks.hpp"

#include <sys/stat.h>

#include <chrono>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <system_error>
#include <thread>

namespace locksmith::test {
namespace {

std::set<std::string> inodes_of(const std::filesystem::path& path) {
  std::set<std::string> inodes;
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    for (const auto& entry : std::filesystem::directory_iterator(path, ec)) {
      struct stat st {};
      if (::lstat(entry.path().c_str(), &st) == 0) inodes.insert(std::to_string(st.st_ino));
    }
  } else {
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0) inodes.insert(std::to_string(st.st_ino));
  }
  return inodes;
}

}  // namespace

int blocked_waiters(const std::filesystem::path& path) {
  const std::set<std::string> inodes = inodes_of(path);
  if (inodes.empty()) return 0;
  std::ifstream locks("/proc/locks");
  std::string line;
  int blocked = 0;
  while (std::getline(locks, line)) {
    // "1: -> FLOCK  ADVISORY  WRITE 4994 fe:00:10952946 0 EOF" is a blocked request.
    std::istringstream words(line);
    std::string word;
    bool arrow = false;
    while (words >> word) {
      if (word == "->") arrow = true;
      const auto last = word.rfind(':');
      if (arrow && last != std::string::npos && last + 1 < word.size() && word.find(':') != last &&
          inodes.count(word.substr(last + 1)) != 0) {
        ++blocked;
        break;
      }
    }
  }
  return blocked;
}

bool wait_for_blocked_waiters(const std::filesystem::path& path, int n,
                              std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (blocked_waiters(path) < n) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    // /proc/locks has no change notification: polling it is the bounded wait.
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

}  // namespace locksmith::test
