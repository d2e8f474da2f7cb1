// Process plumbing for the multi-process tests: spawning this test binary again as a child role
// (LLVM unittests/Support/ProgramTest.cpp), line-based pipes to and from it, and bounded waits.
//
// Every wait here is bounded by kWaitLimit (or a shorter limit given by the caller); a Process
// that is still running when its handle is destroyed is SIGKILLed and reaped, so a failing
// assertion never leaves a child behind.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace locksmith::mp {

// The one bound for every wait: long enough never to fire on a healthy run, short enough that a
// hang fails the test well before the ctest timeout.
inline constexpr std::chrono::milliseconds kWaitLimit{20000};

// How a child's role is selected on its command line: `--locksmith-child=ROLE ARGS...`.
inline constexpr std::string_view kChildFlag = "--locksmith-child=";

// The path of this test binary (resolved from /proc/self/exe).
std::string self_exe();

struct SpawnOptions {
  bool pipe_stdin = true;   // else /dev/null
  bool pipe_stdout = true;  // else inherited
  // Extra descriptors the child gets: {fd in this process, fd number in the child}.
  std::vector<std::pair<int, int>> extra_fds;
};

class Process {
 public:
  // Runs `argv` (argv[0] is the program path; no PATH search).
  static Process spawn(const std::vector<std::string>& argv, const SpawnOptions& options = {});
  // Runs this test binary as child `role` with `args`.
  static Process child(const std::string& role, const std::vector<std::string>& args = {},
                       const SpawnOptions& options = {});

  Process(Process&& other) noexcept;
  Process& operator=(Process&& other) noexcept;
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  ~Process();  // SIGKILLs and reaps a child that is still running

  pid_t pid() const { return pid_; }

  // Sends one line (a '\n' is appended). Returns false if the child's stdin is gone.
  bool send(std::string_view line);
  // The next line from the child's stdout, without '\n'; nullopt on timeout or end of stream.
  std::optional<std::string> read_line(std::chrono::milliseconds limit = kWaitLimit);
  // send() then read_line(); "<no reply>" when nothing came back in time (a readable assertion).
  std::string request(std::string_view line, std::chrono::milliseconds limit = kWaitLimit);
  void close_stdin();

  // Waits up to `limit` for the child to end: its exit code, or -N when killed by signal N;
  // nullopt when it was still running at `limit` (it is then left running).
  std::optional<int> wait_exit(std::chrono::milliseconds limit = kWaitLimit);
  // Sends `signo`; for SIGKILL also reaps (bounded) and returns what wait_exit returned.
  std::optional<int> kill(int signo);

 private:
  Process() = default;
  void cleanup() noexcept;

  pid_t pid_ = -1;
  int in_ = -1;   // our end of the child's stdin
  int out_ = -1;  // our end of the child's stdout
  bool reaped_ = false;
  std::string buffer_;
};

// A pipe whose two ends are closed on destruction (both created close-on-exec).
struct Pipe {
  Pipe();
  ~Pipe();
  Pipe(const Pipe&) = delete;
  Pipe& operator=(const Pipe&) = delete;
  void close_read();
  void close_write();
  int read_fd = -1;
  int write_fd = -1;
};

// Reads one '\n'-terminated line from `fd`, waiting up to `limit`; nullopt on timeout or EOF.
std::optional<std::string> read_line_from(int fd, std::string& buffer,
                                          std::chrono::milliseconds limit = kWaitLimit);

// Number of blocked lock requests ("->" lines of /proc/locks) on the file at `path`.
int blocked_waiters(const std::filesystem::path& path);
// Waits (bounded) until at least `n` lock requests on `path` are blocked in the kernel.
bool wait_for_blocked_waiters(const std::filesystem::path& path, int n,
                              std::chrono::milliseconds limit = kWaitLimit);

// Whether process `pid` has a handler installed for `signo` (SigCgt in /proc/PID/status).
bool catches_signal(pid_t pid, int signo);

// Entry point for `--locksmith-child=ROLE`; returns the process exit code (see child_roles.cpp).
int run_child_role(const std::string& role, const std::vector<std::string>& args);

}  // namespace locksmith::mp
