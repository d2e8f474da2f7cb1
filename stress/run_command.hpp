// `locksmith run`: acquire a lock, run a command, keep the lock alive while it runs, release.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "locksmith/lock.hpp"

namespace CLI {
class App;
}

namespace locksmith::cli {

// Exit statuses of `locksmith run` besides the command's own.
inline constexpr int kExitUsage = 2;       // bad arguments or a lock error (message on stderr)
inline constexpr int kExitNotLocked = 75;  // EX_TEMPFAIL: the lock was not acquired in time
inline constexpr int kExitLockLost = 76;   // the lock was lost while the command ran
inline constexpr int kExitCannotRun = 126;
inline constexpr int kExitNotFound = 127;

// What `run` does to the command when the lock is lost while it runs.
enum class OnLost {
  term,    // SIGTERM to the command's process group, SIGKILL after kill_after (the default)
  kill,    // SIGKILL at once
  ignore,  // let it finish (the loss is still reported, and the exit status is kExitLockLost)
};

struct RunRequest {
  std::string spec;
  bool shared = false;
  std::optional<double> timeout_seconds;  // nullopt: the spec's own (default: wait forever)
  bool verbose = false;
  // Keep an expiring lock alive while the command runs (link, dotlock, redis, redlock, pub/sub).
  bool keep_alive = true;
  std::optional<double> keep_alive_seconds;  // nullopt: the lock's own interval (lifetime/3, ...)
  OnLost on_lost = OnLost::term;
  double kill_after_seconds = 5;
  std::vector<std::string> command;
};

// Returns the process exit status to use.
int run_locked(const RunRequest& request);

class RunCommand {
 public:
  // Adds the `run` subcommand and its options to `app`.
  explicit RunCommand(CLI::App& app);
  RunCommand(const RunCommand&) = delete;
  RunCommand& operator=(const RunCommand&) = delete;
  ~RunCommand();

  // Whether `run` was given on the command line (after app.parse()).
  bool selected() const;
  // The request the command line asks for (after app.parse()).
  RunRequest request() const;
  // Runs it (run_locked); returns the exit status.
  int run() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace locksmith::cli
