// Lock requests blocked in the kernel, as /proc/locks shows them ("->" lines): how a test knows
// that a waiter really waits before it releases, instead of sleeping.
#pragma once

#include <filesystem>

#include "wait_limit.hpp"

namespace locksmith::test {

// Number of blocked lock requests on `path`, or on the files now in it when it is a directory.
// Matched by inode number: /proc/locks prints the superblock's device, which on some filesystems
// (btrfs subvolumes, overlayfs) is not the st_dev that stat() reports.
int blocked_waiters(const std::filesystem::path& path);
// Waits (bounded) until at least `n` such requests are blocked.
bool wait_for_blocked_waiters(const std::filesystem::path& path, int n,
                              std::chrono::milliseconds limit = kWaitLimit);

}  // namespace locksmith::test
