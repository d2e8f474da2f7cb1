#include "mp_support.hpp"

#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

namespace locksmith::mp {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// "MAJ:MIN:INODE" as /proc/locks prints it (major and minor in hex).
std::string proc_locks_id(const std::filesystem::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return {};
  char id[64];
  std::snprintf(id, sizeof id, "%02x:%02x:%lu", major(st.st_dev), minor(st.st_dev),
                static_cast<unsigned long>(st.st_ino));
  return id;
}

}  // namespace

int blocked_waiters(const std::filesystem::path& path) {
  const std::string id = proc_locks_id(path);
  if (id.empty()) return 0;
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
      if (arrow && word == id) {
        ++blocked;
        break;
      }
    }
  }
  return blocked;
}

bool wait_for_blocked_waiters(const std::filesystem::path& path, int n,
                              std::chrono::milliseconds limit) {
  const auto deadline = Clock::now() + limit;
  while (blocked_waiters(path) < n) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

bool catches_signal(pid_t pid, int signo) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("SigCgt:", 0) == 0) {
      const unsigned long long mask = std::stoull(line.substr(7), nullptr, 16);
      return ((mask >> (signo - 1)) & 1ULL) != 0;
    }
  }
  return false;
}

}  // namespace locksmith::mp
