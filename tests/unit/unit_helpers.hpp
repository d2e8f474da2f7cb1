// Helpers for the single-process unit tests beside test::Subprocess: re-running this binary in a
// child mode, detection of blocked lock waiters through /proc/locks, and directory listings.
#pragma once

#include <chrono>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "subprocess.hpp"

namespace locksmith::unit {

// Child processes and the wait bound come from the shared support layer (tests/support).
using test::Channel;
using test::kWaitLimit;
using test::Subprocess;

// Runs this test binary again as child `mode` (see unit_main.cpp), without the LOCKSMITH_*
// variables of this process and with the extra environment entries ("NAME=value"); with
// `ignore_signal` > 0 that signal starts ignored (an ignored disposition survives exec).
// Returns the exit code, or -1 (killed by a signal, or still running at kWaitLimit).
int run_self(const std::string& mode, const std::vector<std::string>& env, int ignore_signal = 0);

// The entry point for the child modes (`--locksmith-child=MODE`, see unit_main.cpp).
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
