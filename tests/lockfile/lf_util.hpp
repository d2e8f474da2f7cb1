// Helpers for the lockfile-convention tests: child processes driven over pipes, with bounded waits.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace lftest {

using namespace std::chrono_literals;

// Every wait in these tests is bounded by this.
inline constexpr std::chrono::milliseconds kWait = 20s;

// A child process with its stdin and stdout on pipes.
class Child {
 public:
  // Runs argv[0] (execv) with stdin/stdout on pipes; stderr is inherited.
  static Child spawn(const std::vector<std::string>& argv);
  // Forks and runs fn in the child (its stdin/stdout are the pipes); exits with fn's result.
  static Child fork(const std::function<int()>& fn);

  Child() = default;
  Child(Child&& other) noexcept;
  Child& operator=(Child&& other) noexcept;
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child();  // kills and reaps a child still running

  pid_t pid() const { return pid_; }
  // One line from the child's stdout (without "\n"), or nullopt at EOF or after `timeout`.
  std::optional<std::string> read_line(std::chrono::milliseconds timeout = kWait);
  void write_line(const std::string& line);
  // Exit status as from waitpid (-1 if it did not end within `timeout`, then killed).
  int wait(std::chrono::milliseconds timeout = kWait);
  void kill9();
  void close_stdin();

 private:
  pid_t pid_ = -1;
  int in_ = -1;   // child's stdin
  int out_ = -1;  // child's stdout
  std::string buffer_;
};

// Runs argv and returns (exit code or -1, stdout).
std::pair<int, std::string> run(const std::vector<std::string>& argv,
                                std::chrono::milliseconds timeout = kWait);

std::string read_file(const std::filesystem::path& p);
void write_file(const std::filesystem::path& p, const std::string& content);
// Sets the mtime `age` into the past and the atime to now.
void age_file(const std::filesystem::path& p, std::chrono::seconds age);
// A pid that is certainly not running (a reaped child's).
pid_t dead_pid();
// Names in a directory, sorted.
std::vector<std::string> list_dir(const std::filesystem::path& dir);

}  // namespace lftest
