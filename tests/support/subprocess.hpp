// Child processes for the tests: a program spawned from argv, this test binary re-run as a child
// role (LLVM unittests/Support/ProgramTest.cpp), or a forked function; each talks to the test
// over pipes, line by line (or byte by byte).
//
// Every wait is bounded by kWaitLimit (or a shorter limit given by the caller). A Subprocess that
// is still running when it is destroyed is SIGKILLed and reaped, so a failing assertion never
// leaves a child behind.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "wait_limit.hpp"

namespace locksmith::test {

// How a child's role is selected on its command line: `--locksmith-child=ROLE ARGS...`.
inline constexpr std::string_view kChildFlag = "--locksmith-child=";

// The path of this test binary (resolved from /proc/self/exe).
std::string self_exe();

// The role named by `argv` (`--locksmith-child=ROLE` in argv[1]), if any: for a test main that
// dispatches child roles before GoogleTest sees the arguments.
std::optional<std::string> child_role(int argc, char** argv);

// Line (and byte) I/O over a pair of descriptors: the test's end of a child's stdin/stdout, or
// the child's end of the pipes to its parent. Reads are bounded and buffered.
class Channel {
 public:
  Channel() = default;
  Channel(int in, int out) : in_(in), out_(out) {}
  Channel(Channel&& other) noexcept;
  Channel& operator=(Channel&& other) noexcept;
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;
  ~Channel();

  // Sends one line (a '\n' is appended). False when the other side is gone (SIGPIPE is never
  // raised for it).
  bool send(std::string_view line);
  // Sends one byte.
  bool send(char c);
  // The next line, without '\n'; nullopt on timeout or end of stream.
  std::optional<std::string> read_line(std::chrono::milliseconds limit = kWaitLimit);
  // The next byte; nullopt on timeout or end of stream.
  std::optional<char> receive(std::chrono::milliseconds limit = kWaitLimit);
  // Everything up to end of stream (bounded by `limit` in all); what came when it timed out.
  std::string read_all(std::chrono::milliseconds limit = kWaitLimit);
  // send() then read_line(); "<stdin closed>" / "<no reply>" as a readable assertion.
  std::string request(std::string_view line, std::chrono::milliseconds limit = kWaitLimit);

  // Whether the reading side reached end of stream (the writer closed it or exited).
  bool at_end() const { return at_end_; }

  int in_fd() const { return in_; }    // what read_line() reads
  int out_fd() const { return out_; }  // what send() writes
  void close_in();
  void close_out();

 private:
  bool fill(std::chrono::steady_clock::time_point deadline);

  int in_ = -1;
  int out_ = -1;
  bool at_end_ = false;
  std::string buffer_;
};

// Where a child's standard stream goes.
enum class Stdio {
  pipe,     // a pipe to the test (stdin: send(); stdout: read_line())
  inherit,  // the test's own
  null,     // /dev/null
  stdout_,  // stderr only: the same as stdout (`2>&1`)
  file,     // stderr only: SpawnOptions::stderr_file, truncated
};

struct SpawnOptions {
  Stdio in = Stdio::pipe;
  Stdio out = Stdio::pipe;
  Stdio err = Stdio::inherit;
  std::string stderr_file;  // for err == Stdio::file
  // Extra descriptors the child gets: {fd in this process, fd number in the child}.
  std::vector<std::pair<int, int>> extra_fds;
  // Environment entries ("NAME=value") set in the child, replacing ones of the same name.
  std::vector<std::string> env;
  // Environment entries whose names start with this are dropped first ("" drops none).
  std::string drop_env_prefix;
  // Signals the child starts with ignored (an ignored disposition survives exec); every other
  // signal starts with its default disposition and none is blocked.
  std::vector<int> ignore_signals;
  // Look argv[0] up in $PATH when it has no '/'.
  bool search_path = false;
};

// What a finished child left: its exit code (-N when killed by signal N; nullopt when it did
// not end within the limit and was killed) and its stdout.
struct Completed {
  std::optional<int> exit;
  std::string out;
  std::chrono::steady_clock::duration took{};
};

class Subprocess {
 public:
  // Runs `argv` (argv[0] is the program path). Throws std::system_error when it cannot be run.
  static Subprocess spawn(const std::vector<std::string>& argv, const SpawnOptions& options = {});
  // Runs this test binary as child `role` with `args` (see kChildFlag).
  static Subprocess self(const std::string& role, const std::vector<std::string>& args = {},
                         const SpawnOptions& options = {});
  // Forks; `body` runs in the child with its end of the pipes and the child _exits with body's
  // result (99 if it throws), running no atexit handler and no GoogleTest teardown. With `stdio`,
  // the pipes are also the child's stdin and stdout (for bodies that printf). Fork only from a
  // test that has started no threads, or keep the body to async-signal-safe work.
  static Subprocess fork(const std::function<int(Channel&)>& body, bool stdio = false);

  Subprocess() = default;
  Subprocess(Subprocess&& other) noexcept;
  Subprocess& operator=(Subprocess&& other) noexcept;
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;
  ~Subprocess();  // SIGKILLs and reaps a child that is still running

  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0 && !reaped_; }

  bool send(std::string_view line) { return io_.send(line); }
  bool send(char c) { return io_.send(c); }
  std::optional<std::string> read_line(std::chrono::milliseconds limit = kWaitLimit) {
    return io_.read_line(limit);
  }
  std::optional<char> receive(std::chrono::milliseconds limit = kWaitLimit) {
    return io_.receive(limit);
  }
  std::string read_all(std::chrono::milliseconds limit = kWaitLimit) { return io_.read_all(limit); }
  std::string request(std::string_view line, std::chrono::milliseconds limit = kWaitLimit) {
    return io_.request(line, limit);
  }
  void close_stdin() { io_.close_out(); }
  Channel& channel() { return io_; }

  // Waits up to `limit` for the child to end: its exit code, or -N when killed by signal N;
  // nullopt when it was still running at `limit` (it is then left running) or already reaped.
  std::optional<int> wait_exit(std::chrono::milliseconds limit = kWaitLimit);
  // Sends `signo`; for SIGKILL also reaps (bounded) and returns what wait_exit returned.
  std::optional<int> kill(int signo);

 private:
  void cleanup() noexcept;

  pid_t pid_ = -1;
  bool reaped_ = false;
  Channel io_;  // in: the child's stdout; out: the child's stdin
};

// A pid that is certainly not running: a child's that was reaped (until the kernel reuses it).
pid_t dead_pid();

// Runs `argv` with its stdin on /dev/null until it ends (bounded by `limit`; killed after it),
// collecting its stdout (with options.out = Stdio::pipe, the default; and stderr too with
// options.err = Stdio::stdout_).
Completed run(const std::vector<std::string>& argv, const SpawnOptions& options = {},
              std::chrono::milliseconds limit = kWaitLimit);
// run() of `/bin/sh -c command`, for tests whose command line needs the shell ($$, 2>&1, ...).
Completed run_shell(const std::string& command, const SpawnOptions& options = {},
                    std::chrono::milliseconds limit = kWaitLimit);
// The exit code as a shell reports it: 128+N for signal N, 128 when it was killed at the limit.
int shell_status(const std::optional<int>& exit);

}  // namespace locksmith::test
