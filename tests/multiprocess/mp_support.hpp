// Helpers of the multi-process tests beside test::Subprocess (tests/support/subprocess.hpp):
// installed signal handlers and the child-role table.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "proc_locks.hpp"
#include "subprocess.hpp"

namespace locksmith::mp {

// Child processes and the wait bound come from the shared support layer (tests/support).
using test::blocked_waiters;
using test::kChildFlag;
using test::kWaitLimit;
using test::self_exe;
using test::SpawnOptions;
using test::Stdio;
using test::Subprocess;
using test::wait_for_blocked_waiters;

// Whether process `pid` has a handler installed for `signo` (SigCgt in /proc/PID/status).
bool catches_signal(pid_t pid, int signo);

// Entry point for `--locksmith-child=ROLE`; returns the process exit code (see child_roles.cpp).
int run_child_role(const std::string& role, const std::vector<std::string>& args);

}  // namespace locksmith::mp
