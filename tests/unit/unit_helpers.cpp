#include "unit_helpers.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <system_error>
#include <thread>

extern char** environ;

namespace locksmith::unit {
namespace {

using namespace std::chrono_literals;

// Waits for `fd` to become readable; false on timeout.
bool wait_readable(int fd, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() < 0) return false;
    pollfd p{fd, POLLIN, 0};
    const int rc = ::poll(&p, 1, static_cast<int>(left.count()));
    if (rc > 0) return true;
    if (rc == 0) return false;
    if (errno != EINTR) return false;
  }
}

// Bounded waitpid: polls for the exit of `pid` (there is no waitpid with a timeout).
std::optional<int> reap(pid_t pid, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    int status = 0;
    const pid_t rc = ::waitpid(pid, &status, WNOHANG);
    if (rc == pid) {
      if (WIFEXITED(status)) return WEXITSTATUS(status);
      return std::nullopt;
    }
    if (rc < 0 && errno != EINTR) return std::nullopt;
    if (std::chrono::steady_clock::now() >= deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return std::nullopt;
    }
    std::this_thread::sleep_for(1ms);
  }
}

}  // namespace

Child::Child(const std::function<int(Child&)>& body) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    throw std::system_error(errno, std::generic_category(), "socketpair");
  }
  pid_ = ::fork();
  if (pid_ < 0) {
    const int err = errno;
    ::close(sv[0]);
    ::close(sv[1]);
    throw std::system_error(err, std::generic_category(), "fork");
  }
  if (pid_ == 0) {
    ::close(sv[0]);
    fd_ = sv[1];
    int code = 99;
    try {
      code = body(*this);
    } catch (...) {
      code = 99;
    }
    ::_exit(code);  // no atexit handlers, no gtest teardown in the child
  }
  ::close(sv[1]);
  fd_ = sv[0];
}

Child::~Child() {
  if (pid_ > 0 && !reaped_) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
  if (fd_ >= 0) ::close(fd_);
}

void Child::send(char c) { (void)::send(fd_, &c, 1, MSG_NOSIGNAL); }

std::optional<char> Child::receive(std::chrono::milliseconds limit) {
  if (!wait_readable(fd_, limit)) return std::nullopt;
  char c = 0;
  ssize_t n = 0;
  do {
    n = ::recv(fd_, &c, 1, 0);
  } while (n < 0 && errno == EINTR);
  if (n != 1) return std::nullopt;
  return c;
}

std::optional<int> Child::wait_exit(std::chrono::milliseconds limit) {
  if (reaped_) return std::nullopt;
  reaped_ = true;
  return reap(pid_, limit);
}

int run_self(const std::string& mode, const std::vector<std::string>& env, int ignore_signal) {
  std::vector<std::string> entries;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry(*e);
    if (entry.rfind("LOCKSMITH_", 0) == 0) continue;  // the child's environment is ours to set
    entries.push_back(entry);
  }
  entries.push_back("LOCKSMITH_UNIT_CHILD=" + mode);
  entries.insert(entries.end(), env.begin(), env.end());
  std::vector<char*> envp;
  for (auto& e : entries) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::string exe = "/proc/self/exe";
  std::vector<char*> argv = {exe.data(), nullptr};

  const pid_t pid = ::fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    if (ignore_signal > 0) ::signal(ignore_signal, SIG_IGN);
    ::execve(exe.c_str(), argv.data(), envp.data());
    ::_exit(127);
  }
  return reap(pid, std::chrono::duration_cast<std::chrono::milliseconds>(kWaitLimit)).value_or(-1);
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
