// Internal: sleeps that a std::stop_token cuts short (the cancellation of Lockable::acquire, see
// set_stop_token in lockable.hpp). POSIX only (stop_wait_posix.cpp): the primitives that use it
// are not implemented on Windows.
#pragma once

#include <optional>
#include <stop_token>

#include "locksmith/lock.hpp"
#include "locksmith/unique_fd.hpp"

namespace locksmith::detail {

// One wait of one acquire(). A token that can be stopped gets a self-pipe and a stop_callback
// that writes to it, both made at the first sleep (so an uncontended acquire costs nothing) and
// dropped with this object; without such a token, sleeps are plain sleeps (or polls of `fd`).
class StopWait {
 public:
  explicit StopWait(std::stop_token token) noexcept : token_(std::move(token)) {}
  StopWait(const StopWait&) = delete;
  StopWait& operator=(const StopWait&) = delete;

  bool stopped() const noexcept { return token_.stop_requested(); }
  // Sleeps until `until`, until a stop is requested, or (with fd >= 0) until `fd` is readable.
  // True when `fd` is readable; EINTR just ends the sleep early.
  bool wait_until(Clock::time_point until, int fd = -1) noexcept;

 private:
  struct Wake {
    int fd;
    void operator()() const noexcept;
  };
  void arm() noexcept;

  std::stop_token token_;
  bool armed_ = false;
  // Declared before the callback, so that the callback (whose destructor waits for a running
  // invocation) goes first and never writes to a closed pipe.
  UniqueFd wake_read_, wake_write_;
  std::optional<std::stop_callback<Wake>> callback_;
};

}  // namespace locksmith::detail
