// Lockable: the one interface every locksmith primitive implements, so that the CLI, the harness
// and user code drive them alike. It meets the standard Lockable, TimedLockable and
// SharedTimedLockable requirements, so std::unique_lock, std::shared_lock and std::scoped_lock
// work with every primitive.
//
// Primitives implement three non-throwing calls (acquire, release, describe); the throwing std
// names are built on them here. "Busy" is not an error: try_lock() returns false.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <stop_token>
#include <string>
#include <system_error>
#include <type_traits>

#include "locksmith/error.hpp"
#include "locksmith/lock.hpp"

namespace locksmith {

// What a lock is and, when held, what identifies the holding.
struct LockInfo {
  std::string kind;       // "flock", "fcntl", "ofd", "sem", ...
  std::string mechanism;  // what actually locks: "flock", "posix", "ofd", ...
  std::string target;     // path, directory/name or key
  bool held = false;
  std::optional<LockMode> mode;        // set while held
  std::optional<std::string> token;    // owner token where the primitive has one
  std::optional<std::uint64_t> fence;  // fencing number where the primitive gives one
  std::optional<std::string> slot;     // semaphore slot held
  // The file the last acquire failed on (an OS error, not "busy"), where that is not `target`:
  // a semaphore's slot file. Unset while held.
  std::optional<std::string> failed_path;

  // What an error message about a failed acquire should name.
  const std::string& error_target() const noexcept { return failed_path ? *failed_path : target; }
};

class Lockable {
 public:
  virtual ~Lockable() = default;

  // The primitive's own calls, non-throwing.
  // acquire: {} when held; errc::busy / errc::timeout when someone else holds it (see lock.hpp for
  // what a deadline means); any other code is a failure and leaves nothing held.
  virtual std::error_code acquire(LockMode mode, Clock::time_point deadline) noexcept = 0;
  // release: {} when released; errc::not_locked when not held; an OS error still releases.
  virtual std::error_code release() noexcept = 0;
  virtual LockInfo describe() const = 0;
  virtual bool supports_shared() const noexcept { return true; }

  // Lock loss: what can take a held lock away without release(). Locks held by the OS for an
  // open file or a process (flock, fcntl, ofd, sem, mkdir, pidfile) cannot be lost while the
  // holder lives and keep these defaults. Locks that expire (link lifetime, dotlock stale age,
  // Redis TTL) or live on a connection (pub/sub) override them; each header says when loss is
  // detected and how fast. KeepAlive (keep_alive.hpp) drives them for a holder.
  //
  // How often keep_alive() must run while held; zero = the lock cannot be lost (nothing to do).
  virtual Clock::duration keep_alive_interval() const noexcept { return Clock::duration::zero(); }
  // Renews the hold: rewrites the expiry, resets the TTL, or checks the connection. {} = still
  // held; errc::lock_lost = found lost (someone else may hold it now); errc::not_locked = not
  // held; any other code = could not tell this time (the server did not answer): the hold is
  // only certain until valid_until(). Not thread-safe with the lock's other calls, except lost().
  virtual std::error_code keep_alive() noexcept { return {}; }
  // Until when the current hold is certain without another successful keep_alive() (the
  // holder's own bound, on the steady clock); kForever when it cannot expire.
  virtual Clock::time_point valid_until() const noexcept { return kForever; }
  // Whether the lock was already found lost (no I/O; safe from any thread).
  virtual bool lost() const noexcept { return false; }
  // The longest a crashed holder's lock keeps others out (lifetime + clock slop, TTL); nullopt =
  // released by the OS when the holder dies (or never, for a lock without stale detection).
  virtual std::optional<Clock::duration> expiry_bound() const noexcept { return std::nullopt; }
  // Push notice of loss, for primitives that find it on a thread of their own (the pub/sub lock's
  // subscriber thread): `notice` is called from that thread, at once, when the lock is found
  // lost. Returns false when the primitive has no such thread (keep_alive() then is how loss is
  // found). An empty function removes the notice; it is never called after that returns.
  virtual bool on_loss(const std::function<void()>& /*notice*/) noexcept { return false; }

  // Cancellation of a waiting acquire() from another thread (what `locksmith run` uses on
  // SIGTERM/SIGINT). Once `token` is stopped (request_stop() from any thread, e.g. one that
  // sigwait()s; it is not async-signal-safe, so not from a signal handler), an acquire() of this
  // object that is waiting, or that starts later, returns errc::cancelled promptly, holds
  // nothing and has removed the temporary files it made (see each primitive for its claim).
  // An acquire() that got the lock before it saw the stop returns {}: check the token after it.
  // Returns false, and ignores the token, where waits cannot be interrupted yet; true for link,
  // dotlock, pidfile and mkdir. Not thread-safe against a running acquire(): set it before.
  virtual bool set_stop_token(const std::stop_token& /*token*/) noexcept { return false; }

  // Standard Lockable / TimedLockable. lock() honours the primitive's configured wait policy
  // (timeout, fail_when_locked) and throws AlreadyLocked / LockTimeout / LockError.
  // They take default_mode(): exclusive unless the primitive was configured shared.
  void lock() { lock_mode(default_mode()); }
  bool try_lock() { return try_mode(default_mode(), Clock::time_point::min()); }
  template <class Rep, class Period>
  bool try_lock_for(const std::chrono::duration<Rep, Period>& d) {
    return try_mode(default_mode(), deadline_after(d));
  }
  template <class C, class D>
  bool try_lock_until(const std::chrono::time_point<C, D>& t) {
    return try_mode(default_mode(), to_deadline(t));
  }
  void unlock();

  // Standard SharedLockable / SharedTimedLockable.
  void lock_shared() { lock_mode(LockMode::shared); }
  bool try_lock_shared() { return try_mode(LockMode::shared, Clock::time_point::min()); }
  template <class Rep, class Period>
  bool try_lock_shared_for(const std::chrono::duration<Rep, Period>& d) {
    return try_mode(LockMode::shared, deadline_after(d));
  }
  template <class C, class D>
  bool try_lock_shared_until(const std::chrono::time_point<C, D>& t) {
    return try_mode(LockMode::shared, to_deadline(t));
  }
  void unlock_shared() { unlock(); }

  // The mode that lock() and try_lock*() take.
  virtual LockMode default_mode() const noexcept { return LockMode::exclusive; }
  // The deadline that lock() uses: from the primitive's options (default: wait forever).
  virtual Clock::time_point default_deadline() const noexcept { return kForever; }

  // The deadline of a configured wait policy: fail_when_locked -> do not wait; a timeout -> now +
  // timeout; neither -> forever. Every primitive's default_deadline() is this.
  static Clock::time_point policy_deadline(const std::optional<Clock::duration>& timeout,
                                           bool fail_when_locked) {
    if (fail_when_locked) return Clock::time_point::min();
    if (timeout) return deadline_after(*timeout);
    return kForever;
  }

  template <class Rep, class Period>
  static Clock::time_point deadline_after(const std::chrono::duration<Rep, Period>& d) {
    const auto now = Clock::now();
    if (d <= d.zero()) return Clock::time_point::min();
    if (d >= std::chrono::duration_cast<std::chrono::duration<Rep, Period>>(kForever - now)) {
      return kForever;
    }
    return now + std::chrono::ceil<Clock::duration>(d);
  }
  template <class C, class D>
  static Clock::time_point to_deadline(const std::chrono::time_point<C, D>& t) {
    if constexpr (std::is_same_v<C, Clock>) {
      return std::chrono::time_point_cast<Clock::duration>(t);
    } else {
      return deadline_after(t - C::now());
    }
  }

 private:
  void lock_mode(LockMode mode);
  bool try_mode(LockMode mode, Clock::time_point deadline);
};

}  // namespace locksmith
