// Helpers for the single-process unit tests beside test::Subprocess: re-running this binary in a
// child mode, directory listings and the umask.
#pragma once

#include <chrono>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "proc_locks.hpp"
#include "subprocess.hpp"

namespace locksmith::unit {

// Child processes and the wait bound come from the shared support layer (tests/support).
using test::blocked_waiters;
using test::Channel;
using test::kWaitLimit;
using test::Subprocess;
using test::wait_for_blocked_waiters;

// Runs this test binary again as child `mode` (see unit_main.cpp), without the LOCKSMITH_*
// variables of this process and with the extra environment entries ("NAME=value"); with
// `ignore_signal` > 0 that signal starts ignored (an ignored disposition survives exec).
// Returns the exit code, or -1 (killed by a signal, or still running at kWaitLimit).
int run_self(const std::string& mode, const std::vector<std::string>& env, int ignore_signal = 0);

// The entry point for the child modes (`--locksmith-child=MODE`, see unit_main.cpp).
int run_child_mode(const std::string& mode);

// The names in `dir` (not recursive).
std::set<std::string> listing(const std::filesystem::path& dir);

// The process umask (read without changing it for longer than the call).
unsigned current_umask();

}  // namespace locksmith::unit
