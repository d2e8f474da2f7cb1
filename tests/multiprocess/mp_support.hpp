// Helpers of the multi-process tests beside test::Subprocess (tests/support/subprocess.hpp):
// blocked waiters seen in /proc/locks, installed signal handlers, and the child-role table.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "subprocess.hpp"

namespace locksmith::mp {

// Child processes and the wait bound come from the shared support layer (tests/support).
using test::kChildFlag;
using test::kWaitLimit;
using test::self_exe;
using test::SpawnOptions;
using test::Stdio;
using test::Subprocess;

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
