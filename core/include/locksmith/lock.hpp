// Low-level advisory locks on an open file handle, portalocker-style: lock(fd, flags) / unlock(fd).
//
// Backends and what the OS really guarantees (POSIX):
//
// Backend::flock (default; what portalocker uses on POSIX)
//  - Owner: the open file description. dup()ed fds and fds inherited over fork() share the lock;
//    a second open() of the same file, even in the same process, is a separate owner and conflicts.
//  - Released by unlock on any sharing fd, or when the last fd of the description is closed
//    (including by process exit or SIGKILL). Survives exec when the fd does (locksmith sets
//    close-on-exec, so by default it does not).
//  - Threads: not a thread-level lock; threads using one fd share it, threads with separate open()s
//    exclude each other.
//  - NFS: Linux ≥ 2.6.12 emulates flock as a whole-file POSIX byte-range lock over NLM/NFSv4, so it
//    then conflicts with fcntl locks and inherits their semantics; other systems may fail with
//    EOPNOTSUPP/ENOLCK. Mode conversion (shared<->exclusive) is not atomic.
//
// Backend::posix (fcntl F_SETLK/F_SETLKW on the whole file; what lockf(3) and Python's
// fcntl.lockf use)
//  - Owner: the process. Two fds in one process never conflict; threads of one process share it.
//  - Released when the process closes ANY fd for the file, even one it opened for an unrelated
//    reason (a classic source of silent loss), on exit and on SIGKILL. Not inherited by fork().
//    Survives exec.
//  - An exclusive lock needs the fd opened for writing, a shared one needs it opened for reading
//    (EBADF otherwise). The kernel detects some deadlocks (EDEADLK).
//  - NFS: works through NLM (v3) or NFSv4 state; the holder's lease is recovered after a server
//    reboot during a grace period.
//
// Backend::ofd (Linux open-file-description locks, F_OFD_SETLK/F_OFD_SETLKW)
//  - Owner: the open file description, like flock, with fcntl's byte-range machinery: they conflict
//    with fcntl locks, are not dropped by closing an unrelated fd, are shared by dup() and fork(),
//    and two open()s in one process (or two threads with their own opens) exclude each other.
//  - NFS: same as posix locks on the wire. Linux only; elsewhere errc::unsupported.
//
// Backend::windows (LockFileEx on the first 64 KiB like portalocker; owner: the handle; mandatory).
//
// Waiting. A wait without deadline is the blocking system call: the kernel wakes the waiter when
// the lock is released. A wait with a deadline is the same blocking call, interrupted at the
// deadline by a per-thread POSIX timer that sends a dedicated real-time signal (see
// wake_signal()); no polling happens before the deadline. Where that mechanism is unavailable
// (not Linux; the signal is used by the application; the signal is blocked in the calling
// thread), the wait falls back to non-blocking retries with exponential backoff (50 µs .. 10 ms).
#pragma once

#include <chrono>
#include <cstdint>
#include <string_view>
#include <system_error>

#include "locksmith/platform.hpp"

namespace locksmith {

// Bit values match portalocker's LockFlags on Linux (SHARED=1, EXCLUSIVE=2, NON_BLOCKING=4,
// UNBLOCK=8).
enum class LockFlags : unsigned {
  none = 0,
  shared = 1,
  exclusive = 2,
  non_blocking = 4,
  unblock = 8,
};

constexpr LockFlags operator|(LockFlags a, LockFlags b) noexcept {
  return static_cast<LockFlags>(static_cast<unsigned>(a) | static_cast<unsigned>(b));
}
constexpr LockFlags operator&(LockFlags a, LockFlags b) noexcept {
  return static_cast<LockFlags>(static_cast<unsigned>(a) & static_cast<unsigned>(b));
}
constexpr bool has(LockFlags set, LockFlags bit) noexcept { return (set & bit) == bit; }

enum class LockMode { exclusive, shared };

// What actually locks. `link` and `auto_` are reserved for the NFS-safe locks.
enum class Backend { flock, posix, ofd, windows, link, auto_ };

// The documented default: flock on POSIX (as portalocker), LockFileEx on Windows.
#if defined(LOCKSMITH_OS_WINDOWS)
inline constexpr Backend kDefaultBackend = Backend::windows;
#else
inline constexpr Backend kDefaultBackend = Backend::flock;
#endif

std::string_view to_string(Backend b) noexcept;
std::string_view to_string(LockMode m) noexcept;
// The spec kind (and probe primitive) of a backend: to_string(b), but "fcntl" for posix.
std::string_view kind_name(Backend b) noexcept;

// The clock of every deadline in locksmith. Clock::time_point::max() means "wait forever";
// a deadline at or before now means "do not wait".
using Clock = std::chrono::steady_clock;
inline constexpr Clock::time_point kForever = Clock::time_point::max();

// Locks `h`. Exactly one of shared/exclusive must be set (errc::invalid_argument otherwise,
// including non_blocking alone); `unblock` alone unlocks. Busy with non_blocking -> errc::busy.
std::error_code lock(native_handle h, LockFlags flags, Backend b = kDefaultBackend) noexcept;
std::error_code unlock(native_handle h, Backend b = kDefaultBackend) noexcept;

// Locks `h` in `mode`, waiting until `deadline` (see "Waiting" above).
// Returns {} when held, errc::busy when busy and the deadline had already passed on entry,
// errc::timeout when busy at the deadline, or the OS error.
std::error_code lock_until(native_handle h, LockMode mode, Backend b,
                           Clock::time_point deadline) noexcept;

// The real-time signal used to interrupt timed waits (Linux), or 0 when timed waits poll.
// Chosen once per process: $LOCKSMITH_WAKE_SIGNAL (a number; 0 disables) or SIGRTMAX-3.
// locksmith installs a no-op handler for it only while its disposition is SIG_DFL.
int wake_signal() noexcept;

}  // namespace locksmith
