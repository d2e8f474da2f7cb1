// Redlock: one exclusive lock over N independent Redis masters (the algorithm of the Redis
// documentation, "Distributed Locks with Redis"), held while a majority of them hold our token.
//
// Redlock: where it is safe
//  - Redlock's bound is a timing bound. It assumes that clocks on the masters advance at about
//    the same rate as ours (bounded drift; no jumps: a master whose clock jumps forward expires the
//    key early) and that the holder is not paused (GC, swap, SIGSTOP, a VM migration) for longer
//    than the validity it was told. Neither is guaranteed by an OS; both usually hold.
//  - A holder paused past its validity does not know that it lost the lock, and its delayed writes
//    can land after the next holder's. Redlock gives no fencing number (the masters do not agree
//    on one). Where such writes matter, use RedisLease on one server and check its fence() at the
//    protected resource, or make the resource check something equivalent.
//  - A master restarted without persistence (or with fsync "everysec") forgets our key; with a
//    restart inside the ttl a second client can then win a majority. Delay restarts by the ttl
//    (Redis's docs: "delayed restarts") or run masters with appendfsync always.
//  - Use it where the lock is an efficiency measure (avoid duplicate work) or where the protected
//    resource validates fences; do not use it as the only guard of correctness.
//
// Protocol
//  - The key on each master holds the owner's token (32 lower-case hex characters from
//    getrandom(), as RedisLease), taken with SET key token NX PX ttl, so redis-py (and RedisLease)
//    see a normal lease on each master. release is redis-py's compare-token delete on every
//    master; extend is a compare-token PEXPIRE on every master.
//  - acquire: SET on every master in turn, counting successes; elapsed = time spent;
//    validity = ttl - elapsed - drift (drift = 2 ms + 1% of ttl). It succeeds when at least
//    N/2+1 masters took the key and validity > 0; otherwise it deletes our token on ALL masters
//    and retries after a random delay in [retry_delay/2, retry_delay*3/2] until the deadline.
//  - Each master gets a small connect and command timeout (master_timeout, 50 ms by default) so
//    that a dead master cannot eat the validity; the acquire deadline cuts them further (an
//    attempt at the deadline gets 200 ms). An unreachable master counts as a failure; when fewer
//    than a majority answered at all, acquire fails with the connection error (ETIMEDOUT,
//    ECONNREFUSED, ...), whose message() and last_error() name the masters that did not answer.
//    errc::timeout / errc::busy mean that a majority answered and the key was held on too many.
//
// Semantics
//  - Owner: this object (its token). Not thread-safe. Holder death: nothing is released; the keys
//    expire after ttl on each master.
//  - validity() is the holder's own remaining bound, on the monotonic clock.
//  - release(): {} when a majority still held our token (it is deleted on all reachable masters);
//    errc::lock_lost when fewer did; the connection error when fewer than a majority answered.
//  - extend(ttl): resets the PTTL to ttl on every master holding our token; succeeds with a
//    majority and while validity stays positive, at most max_extensions times per acquisition.
//  - Keys: the same key name on every master; masters are independent servers, never replicas
//    of one another (a replica promoted on failover may not have the key).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "locksmith/lockable.hpp"
#include "locksmith/redis/connection.hpp"

namespace locksmith::redis {

struct RedlockOptions {
  std::chrono::milliseconds ttl{30000};  // PX of the SET; at least 1 ms
  // How long lock() waits; nullopt = forever. try_lock*() ignore it.
  std::optional<Clock::duration> timeout;
  bool fail_when_locked = false;  // lock() fails at once with AlreadyLocked instead of waiting
  // Mean delay between attempts; each delay is uniform in [retry_delay/2, retry_delay*3/2].
  std::chrono::milliseconds retry_delay{200};
  // How many times extend() may succeed per acquisition.
  unsigned max_extensions = 3;
  // Connect and command timeout of every master (overrides the ConnectOptions' own);
  // 0 = keep the ConnectOptions' timeouts.
  std::chrono::milliseconds master_timeout{50};
};

class Redlock : public Lockable {
 public:
  // `masters` must not be empty; they should be independent servers.
  Redlock(std::vector<ConnectOptions> masters, std::string key, RedlockOptions options = {});
  Redlock(const Redlock&) = delete;
  Redlock& operator=(const Redlock&) = delete;
  ~Redlock() override;

  // mode must be exclusive (errc::unsupported otherwise). Acquiring while held:
  // std::errc::resource_deadlock_would_occur.
  std::error_code acquire(LockMode mode, Clock::time_point deadline) noexcept override;
  std::error_code release() noexcept override;
  LockInfo describe() const override;
  bool supports_shared() const noexcept override { return false; }
  Clock::time_point default_deadline() const noexcept override;

  // Sets the PTTL to `ttl` on every master that still holds our token. errc::not_locked when not
  // held; errc::lock_lost when fewer than a majority held our token, or the new validity would
  // not be positive; std::errc::operation_not_permitted after max_extensions extensions.
  std::error_code extend(std::chrono::milliseconds ttl) noexcept;

  bool held() const noexcept { return held_; }
  // The remaining validity (zero when not held or run out).
  Clock::duration validity() const noexcept;
  Clock::time_point valid_until() const noexcept override { return valid_until_; }

  // Lock loss (lockable.hpp): keep_alive() is extend(ttl) without the max_extensions limit (a
  // holder that keeps proving itself alive), every ttl/3. Found lost when fewer than a majority
  // still hold our token, or the validity ran out; fewer than a majority answering leaves the
  // old validity standing (the hold is certain until valid_until()).
  Clock::duration keep_alive_interval() const noexcept override {
    return Clock::duration(options_.ttl) / 3;
  }
  std::error_code keep_alive() noexcept override { return extend_by(options_.ttl, false); }
  bool lost() const noexcept override { return lost_.load(); }
  std::optional<Clock::duration> expiry_bound() const noexcept override { return options_.ttl; }
  // Our token while held (empty otherwise).
  const std::string& token() const noexcept { return token_; }
  // How many masters took the key at the successful acquisition (0 when not held).
  std::size_t acquired_on() const noexcept { return acquired_on_; }
  std::size_t quorum() const noexcept { return masters_.size() / 2 + 1; }
  std::size_t masters() const noexcept { return masters_.size(); }

  const std::string& key() const noexcept { return key_; }
  const RedlockOptions& options() const noexcept { return options_; }
  // "h1:p1,h2:p2,.../key".
  std::string target() const;
  // The message of the last failure, naming the masters involved.
  const std::string& last_error() const noexcept { return last_error_; }

 private:
  // Runs `script` on every master; counts those that returned 1 and those that answered.
  void run_all(const Script& script, std::initializer_list<std::string_view> args,
               std::size_t& ones, std::size_t& answered, std::error_code& first_error,
               std::string& unreachable);
  void unlock_all(const std::string& token);
  std::error_code extend_by(std::chrono::milliseconds ttl, bool counted) noexcept;
  Clock::duration drift(std::chrono::milliseconds ttl) const noexcept;
  Clock::duration retry_pause();

  std::vector<Connection> masters_;
  std::string key_;
  RedlockOptions options_;
  std::string ttl_ms_;
  std::string last_error_;

  bool held_ = false;
  std::atomic<bool> lost_{false};
  std::string token_;
  Clock::time_point valid_until_{};
  std::size_t acquired_on_ = 0;
  unsigned extensions_ = 0;
  std::optional<std::mt19937_64> rng_;
};

struct RedlockSpec {
  std::vector<ConnectOptions> masters;
  std::string key;
  RedlockOptions options;
};

// redlock://H1[:P1],H2[:P2],.../KEY?OPTIONS (PORT defaults to 6379; KEY may be %-encoded; an IPv6
// host goes in brackets). Options: ttl=DURATION (default 30s), timeout=DURATION (default
// forever), fail_when_locked=1, retry_delay=DURATION (default 200ms), max_extensions=N
// (default 3), master_timeout=DURATION (default 50ms), db=N.
// Throws LockError(errc::invalid_spec) naming the spec on bad input.
RedlockSpec parse_redlock_spec(std::string_view spec);

// Opens "redlock://..." as a Redlock; throws as parse_redlock_spec().
std::unique_ptr<Lockable> open_redlock(std::string_view spec);

}  // namespace locksmith::redis
