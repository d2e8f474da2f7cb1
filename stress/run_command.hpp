// `locksmith run`: acquire a lock, run a command, release.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "locksmith/lock.hpp"

namespace locksmith::cli {

// Exit statuses of `locksmith run` besides the command's own.
inline constexpr int kExitUsage = 2;       // bad arguments or a lock error (message on stderr)
inline constexpr int kExitNotLocked = 75;  // EX_TEMPFAIL: the lock was not acquired in time
inline constexpr int kExitCannotRun = 126;
inline constexpr int kExitNotFound = 127;

struct RunRequest {
  std::string spec;
  bool shared = false;
  std::optional<double> timeout_seconds;  // nullopt: the spec's own (default: wait forever)
  bool verbose = false;
  std::vector<std::string> command;
};

// Returns the process exit status to use.
int run_locked(const RunRequest& request);

}  // namespace locksmith::cli
