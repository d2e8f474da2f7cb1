// Internal: blocking lock calls with a deadline and cancellation (see "Waiting" in lock.hpp).
#pragma once

#include <atomic>
#include <mutex>
#include <system_error>

#include "locksmith/lock.hpp"

namespace locksmith::detail {

// One non-blocking (wait=false) or blocking (wait=true) lock call; -1 with errno on failure.
int lock_call(native_handle fd, LockMode mode, Backend b, bool wait) noexcept;

// True when errno value `err` from lock_call means "held by someone else".
bool is_busy_errno(int err) noexcept;

// A timed, cancellable wait for a lock, run by one thread and cancelled from any other.
// The waiting thread sits in the blocking system call, so the kernel hands it the lock as soon as
// it is released. A per-thread POSIX timer delivers wake_signal() at the deadline, or at once on
// cancel(), and then every millisecond until the wait ends; the repeat closes the race where a
// signal lands just before the thread enters the system call.
class Waiter {
 public:
  Waiter() = default;
  Waiter(const Waiter&) = delete;
  Waiter& operator=(const Waiter&) = delete;

  // {} when locked; errc::timeout at the deadline; errc::cancelled after cancel(); or the OS error.
  // The caller has already tried a non-blocking lock.
  std::error_code wait(native_handle fd, LockMode mode, Backend b,
                       Clock::time_point deadline) noexcept;
  // Thread-safe; a wait that has not started yet returns errc::cancelled at once.
  void cancel() noexcept;

 private:
  std::error_code wait_polling(native_handle fd, LockMode mode, Backend b,
                               Clock::time_point deadline) noexcept;
  bool arm_now_locked() noexcept;

  std::atomic<bool> cancelled_{false};
  std::mutex mutex_;       // guards timer_, has_timer_ and armed_
  void* timer_ = nullptr;  // timer_t, spelled portably
  // Whether timer_ is live. Not `timer_ != nullptr`: glibc's timer_t is the kernel timer id cast
  // to a pointer, and the first timer of a process has id 0, i.e. nullptr.
  bool has_timer_ = false;
  bool armed_ = false;
};

}  // namespace locksmith::detail
