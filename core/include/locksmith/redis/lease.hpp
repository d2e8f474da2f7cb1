// RedisLease: redis-py's Lock protocol (redis.lock.Lock, 4.3.4 .. 8.0), so that C++ and Python
// processes exclude each other on the same key, plus a fencing token and waiting without polling.
//
// Protocol (redis-py's, unchanged on the key)
//  - The key holds the owner's token: 32 lower-case hex characters from getrandom() (redis-py
//    uses uuid1().hex; any token interoperates). It is taken with SET key token NX PX ttl.
//  - release / extend / reacquire are redis-py's compare-token Lua scripts: release deletes the
//    key only when it still holds our token; extend adds to (or replaces) the PTTL, reacquire
//    resets it to the ttl, both only when the key holds our token.
//  - Additions that redis-py ignores: the acquire script also INCRs `<key>:fence` in the same
//    script (one round trip), and release PUBLISHes "" on `<key>:released`.
//
// Semantics
//  - Owner: the token, i.e. this object. Two RedisLease objects, even in one process, exclude each
//    other; adopt() takes over a lease given its token (one held by redis-py, say). One object is
//    not thread-safe (the optional refresher thread is internal).
//  - Holder death: nothing is released; the key expires after ttl. A holder that is paused past
//    its ttl loses the lease without knowing; valid() is the holder's own bound: acquire start +
//    ttl - drift (drift = 2 ms + 1% of ttl, as Redlock), moved on by extend/reacquire/refresh.
//    Use fence() with the protected resource to reject writes from a holder that lost the lease.
//  - Fence: every acquisition gets INCR <key>:fence, atomically with the SET, so fences strictly
//    increase across all RedisLease acquirers of the key (redis-py acquirers take none). A fence
//    key that INCR creates (the first acquisition, or a server that lost its data: a restart
//    without persistence, FLUSHALL) is set to the server's clock in microseconds instead, so fences
//    keep increasing across such a loss as long as the server's clock does not step back.
//  - release() of a lease that expired and was taken by someone else returns errc::lock_lost and
//    leaves the other owner's key alone. force_release() deletes the key whoever holds it.
//  - Loss: see keep_alive() below; KeepAlive (keep_alive.hpp) drives it for a holder.
//  - auto_refresh: a thread resets the PTTL to ttl every ttl/3 while held; when the key no longer
//    holds our token the lease is marked lost (owned() false, release() errc::lock_lost).
//  - Waiting: a waiter subscribes to `<key>:released` on a second connection (kept open between
//    waits) and retries when a release is published, when the key's PTTL runs out (an expiring
//    key publishes nothing), at its deadline, and at the latest after `backstop` (peers such as
//    redis-py do not publish on release). No fixed-interval polling. An ACL user that may not
//    use the channels still locks and releases; its waits then end by PTTL and backstop only.
//  - The acquire deadline bounds every connect and round trip of the acquire (the connection's
//    timeouts are cut to the time left; an attempt at the deadline, the last after a wait, gets
//    200 ms). A server that does not answer in time, refuses the connection or resets it makes
//    acquire() return that OS error (ETIMEDOUT, ECONNREFUSED, ...; message() names host:port),
//    never errc::timeout / errc::busy, which mean that someone else holds the key. Waiting
//    forever, or trying once (a deadline already passed), connect_timeout and command_timeout
//    bound each step instead, so a hung server is reported, not waited for.
//  - An acquire whose reply is lost (command timeout, dropped connection) may still have taken
//    the key: the next acquire() of this object reuses the token, so a key left behind is
//    recognised as ours rather than blocking us until it expires. After a dropped connection,
//    acquire() also tries one compare-delete with that token on a new connection (within the
//    deadline) before it returns the error; after a timeout it does not (the server is not
//    answering), so a hung server that resumes may keep the key for up to ttl.
//  - fork(): the connections are not shared safely with a child; create the object after fork().
//  - Cluster: the key, `<key>:fence` and `<key>:released` may hash to different slots; use a hash
//    tag in the key ("{name}") on Redis Cluster.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "locksmith/lockable.hpp"
#include "locksmith/redis/connection.hpp"

namespace locksmith::redis {

struct LeaseOptions {
  std::chrono::milliseconds ttl{30000};  // PX of the SET; must be >= 1 ms
  // How long lock() waits; nullopt = forever. try_lock*() ignore it.
  std::optional<Clock::duration> timeout;
  bool fail_when_locked = false;  // lock() fails at once with AlreadyLocked instead of waiting
  bool auto_refresh = false;      // reset the PTTL every ttl/3 from a background thread
  // Take a fencing number with every acquisition (INCR <key>:fence in the acquire script). false:
  // acquire is redis-py's plain SET NX PX, which spares the server a Lua script per acquisition
  // (about 10% of an uncontended cycle), and fence() stays nullopt. Registered leases
  // (index_key set) always take one.
  bool fence = true;
  // The longest a waiter sleeps without a release notice (for peers that do not publish);
  // nullopt = wake only on a notice, the key's PTTL and the deadline.
  std::optional<Clock::duration> backstop = std::chrono::seconds(1);
  // A lease registry record (LeaseRegistry, registry.hpp); empty = a plain lease. When set, a
  // successful acquire also replaces the hash `<key>:info` with these fields plus `fence` and
  // `token_sha1` (SHA1 of the token; never the token) and adds the key to the set `index_key`,
  // in the same script; release() then also deletes the record and removes the key from the
  // index. The key, fence and channel are the same as a plain lease's.
  std::vector<std::pair<std::string, std::string>> info;
  std::string index_key;
};

class RedisLease : public Lockable {
 public:
  RedisLease(ConnectOptions server, std::string key, LeaseOptions options = {});
  RedisLease(const RedisLease&) = delete;
  RedisLease& operator=(const RedisLease&) = delete;
  ~RedisLease() override;

  // mode must be exclusive (errc::unsupported otherwise). Acquiring while held:
  // std::errc::resource_deadlock_would_occur.
  std::error_code acquire(LockMode mode, Clock::time_point deadline) noexcept override;
  // errc::not_locked when not held; errc::lock_lost when the key no longer holds our token.
  std::error_code release() noexcept override;
  LockInfo describe() const override;
  bool supports_shared() const noexcept override { return false; }
  Clock::time_point default_deadline() const noexcept override;

  // redis-py's extend(additional_time, replace_ttl): adds `additional` to the PTTL, or sets the
  // PTTL to it when `replace`. errc::not_locked when not held, errc::lock_lost when not ours.
  std::error_code extend(std::chrono::milliseconds additional, bool replace = false) noexcept;
  // redis-py's reacquire(): resets the PTTL to the ttl.
  std::error_code reacquire() noexcept;
  // Asks the server whether the key holds our token (false when not held, lost, or on error;
  // the error form reports errors).
  bool owned() noexcept;
  std::error_code owned(bool& out) noexcept;
  // Takes over the lease held under `token` (e.g. redis-py's lock.local.token); the fence is
  // then unknown. errc::not_locked when the key does not hold `token`.
  std::error_code adopt(std::string token) noexcept;
  // Deletes the key whoever holds it (and a registered lease's record), and publishes the release.
  std::error_code force_release() noexcept;
  // Forgets the lease without releasing it: the key lives on until its PTTL runs out (or whoever
  // has the token releases it). Stops the refresher. For handing the token to another process.
  void detach() noexcept;

  bool held() const noexcept { return held_; }
  // Our token while held (empty otherwise).
  const std::string& token() const noexcept { return token_; }
  // The fencing number of the current acquisition (nullopt when not held or adopted).
  std::optional<std::uint64_t> fence() const noexcept { return fence_; }
  // Whether we are still inside our own bound on the lease (see Semantics).
  bool valid() const noexcept;
  Clock::time_point valid_until() const noexcept override;
  // The refresher (or extend/owned) found that the key no longer holds our token.
  bool lost() const noexcept override { return lost_.load(); }

  // Lock loss (lockable.hpp): keep_alive() is reacquire() (the PTTL back to ttl, one round
  // trip), every ttl/3. Found lost when the key no longer holds our token (it expired and was
  // taken, or was deleted); when the server does not answer, the hold is certain only until
  // valid_until(), the holder's own bound, and the renewal's round trip is cut off there, so
  // that the holder is told then (before the key can expire on the server), not when a hung
  // server's command timeout ends.
  Clock::duration keep_alive_interval() const noexcept override {
    return Clock::duration(options_.ttl) / 3;
  }
  std::error_code keep_alive() noexcept override;
  std::optional<Clock::duration> expiry_bound() const noexcept override { return options_.ttl; }

  const std::string& key() const noexcept { return key_; }
  const LeaseOptions& options() const noexcept { return options_; }
  // "host:port/key".
  std::string target() const;
  // The full message of the last failure (server reply or OS error with host:port).
  std::string last_error() const;

 private:
  std::error_code attempt(bool& got, long long& pttl, bool want_pttl, Clock::time_point io);
  void forget_attempt(const Result& r);                                       // caller holds mu_
  std::error_code plain_attempt(bool& got, long long& pttl, bool want_pttl);  // holds mu_
  Result registered_attempt();                                                // caller holds mu_
  std::error_code subscribe(Clock::time_point io);
  std::error_code wait_release(Clock::time_point until);
  void drain();
  std::error_code run_reacquire();  // caller holds mu_
  void start_refresher();
  void stop_refresher() noexcept;
  void refresh_loop();
  void set_valid_until(Clock::time_point t) noexcept;
  Clock::duration drift() const noexcept;
  std::error_code failed(const Result& r);  // caller holds mu_

  std::string key_;
  std::string fence_key_;
  std::string channel_;
  LeaseOptions options_;
  std::string ttl_ms_;

  mutable std::mutex mu_;  // conn_, last_error_, stop_
  Connection conn_;
  std::string last_error_;
  Connection sub_;  // subscriber connection of waiters (used by acquire only)
  bool subscribed_ = false;
  bool no_notify_ = false;  // the server refused SUBSCRIBE (ACL): waits use PTTL and backstop

  bool held_ = false;
  std::string token_;
  std::string retry_token_;  // the token of an attempt whose outcome is unknown
  std::optional<std::uint64_t> fence_;
  std::atomic<bool> lost_{false};
  std::atomic<Clock::rep> valid_until_{0};

  std::thread refresher_;
  std::condition_variable cv_;
  bool stop_ = false;
};

}  // namespace locksmith::redis
