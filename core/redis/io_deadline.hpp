// How an acquire's deadline bounds its connects and round trips (RedisLease, RedisLock, Redlock).
#pragma once

#include <algorithm>
#include <chrono>
#include <string>
#include <system_error>

#include "locksmith/lock.hpp"
#include "locksmith/redis/connection.hpp"

namespace locksmith::redis::detail {

// An attempt that starts at (or just before) the deadline, the last one after a wait, still gets
// this long for its round trips: with no time left at all it could only fail, and a server that
// answers in time would be reported as not answering.
inline constexpr std::chrono::milliseconds kLastAttemptGrace{200};

// The deadline of the connects and round trips of an attempt starting now, of an acquire that
// began at `entry` with `deadline`. A deadline already passed at entry (try once) bounds nothing:
// the one attempt gets the connection's own timeouts. Otherwise the deadline, or now + the grace
// when that is later. The connection's timeouts still cap every wait.
inline Clock::time_point io_deadline(Clock::time_point deadline, Clock::time_point entry) {
  if (deadline <= entry || deadline == kForever) return Connection::kNoDeadline;
  return std::max(deadline, Clock::now() + kLastAttemptGrace);
}

// Sets a connection's deadline for one scope, and puts back the previous one.
class ScopedDeadline {
 public:
  ScopedDeadline(Connection& c, Clock::time_point deadline) noexcept
      : c_(c), previous_(c.deadline()) {
    c_.set_deadline(deadline);
  }
  ScopedDeadline(const ScopedDeadline&) = delete;
  ScopedDeadline& operator=(const ScopedDeadline&) = delete;
  ~ScopedDeadline() { c_.set_deadline(previous_); }

 private:
  Connection& c_;
  Clock::time_point previous_;
};

// An acquire's failure as it returns: an OS error (a server that did not answer in time, refused
// the connection, reset it) carries `message`, which names host:port, so that the bare
// std::error_code says which server failed; other codes are returned as they are.
inline std::error_code with_context(std::error_code ec, const std::string& message) noexcept {
  if (!ec || message.empty() || ec.category() != std::generic_category()) return ec;
  try {
    return with_message(ec, message);
  } catch (...) {
    return ec;
  }
}

}  // namespace locksmith::redis::detail
