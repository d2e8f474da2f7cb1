// Helpers for the single-process unit tests: forked helper processes that hold or probe a lock,
// detection of blocked lock waiters through /proc/locks, and directory listings.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace locksmith::unit {

// The one bound for every wait in the unit tests: long enough never to fire on a healthy run,
// short enough that a hang fails the test instead of the ctest timeout.
inline constexpr std::chrono::seconds kWaitLimit{20};

// A forked child process running `body`, connected to the parent by a socket pair over which
// each side sends single bytes. The child's exit code is body's return value (99 if it throws).
// The destructor SIGKILLs and reaps a child that is still running.
class Child {
 public:
  explicit Child(const std::function<int(Child&)>& body);
  ~Child();
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  pid_t pid() const { return pid_; }

  // Either side: sends one byte (never raises SIGPIPE).
  void send(char c);
  // Either side: waits up to `limit` for one byte; nullopt on timeout or end of stream.
  std::optional<char> receive(std::chrono::milliseconds limit = kWaitLimit);
  // Parent: waits up to `limit` for the child to exit; its exit code, or nullopt (and the child
  // is killed) when it did not exit in time or died from a signal.
  std::optional<int> wait_exit(std::chrono::milliseconds limit = kWaitLimit);

 private:
  pid_t pid_ = -1;
  int fd_ = -1;  // our end of the socket pair
  bool reaped_ = false;
};

// Runs this test binary again (via /proc/self/exe) with LOCKSMITH_UNIT_CHILD=`mode` and the extra
// environment entries ("NAME=value"); with `ignore_signal` > 0 that signal is set to SIG_IGN
// before exec (an ignored disposition survives exec). Returns the exit code, or -1.
int run_self(const std::string& mode, const std::vector<std::string>& env, int ignore_signal = 0);

// The entry point for LOCKSMITH_UNIT_CHILD modes (see unit_main.cpp).
int run_child_mode(const std::string& mode);

// Number of blocked lock requests ("->" lines of /proc/locks) on the files now in `dir`.
int blocked_waiters(const std::filesystem::path& dir);
// Waits (bounded) until at least `n` lock requests on files in `dir` are blocked in the kernel.
bool wait_for_blocked_waiters(const std::filesystem::path& dir, int n,
                              std::chrono::milliseconds limit = kWaitLimit);

// The names in `dir` (not recursive).
std::set<std::string> listing(const std::filesystem::path& dir);

// The process umask (read without changing it for longer than the call).
unsigned current_umask();

}  // namespace locksmith::unit
