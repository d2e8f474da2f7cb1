#include "unit_helpers.hpp"

#include <sys/stat.h>

#include <fstream>
#include <sstream>
#include <thread>

namespace locksmith::unit {
namespace {

using namespace std::chrono_literals;

}  // namespace

int run_self(const std::string& mode, const std::vector<std::string>& env, int ignore_signal) {
  test::SpawnOptions o;
  o.in = test::Stdio::null;
  o.out = test::Stdio::inherit;
  o.drop_env_prefix = "LOCKSMITH_";  // the child's environment is ours to set
  o.env = env;
  if (ignore_signal > 0) o.ignore_signals = {ignore_signal};
  Subprocess child = Subprocess::self(mode, {}, o);
  const auto code = child.wait_exit();
  return code && *code >= 0 ? *code : -1;
}

int blocked_waiters(const std::filesystem::path& dir) {
  std::set<std::string> inodes;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    struct stat st {};
    if (::lstat(entry.path().c_str(), &st) == 0) inodes.insert(std::to_string(st.st_ino));
  }
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

bool wait_for_blocked_waiters(const std::filesystem::path& dir, int n,
                              std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (blocked_waiters(dir) < n) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

std::set<std::string> listing(const std::filesystem::path& dir) {
  std::set<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    names.insert(entry.path().filename().string());
  }
  return names;
}

unsigned current_umask() {
  const mode_t old = ::umask(022);
  ::umask(old);
  return static_cast<unsigned>(old);
}

}  // namespace locksmith::unit
