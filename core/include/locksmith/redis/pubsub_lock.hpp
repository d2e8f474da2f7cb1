// RedisLock: portalocker's pub/sub Redis lock, wire-compatible with the legacy protocol of
// portalocker <= 3.2 (Debian's python3-portalocker 2.2.1), so C++ and Python processes exclude
// each other on one channel.
//
// Protocol (portalocker 2.2.1's, unchanged on the wire)
//  - The lock is held by a live SUBSCRIBE on CHANNEL; no key is written. The holder's subscriber
//    connection is named `<CHANNEL>-lock` (CLIENT SETNAME), and PUBSUB NUMSUB CHANNEL == 1 right
//    after subscribing means it is ours.
//  - A contender that sees subscribers pings them: it subscribes to `<CHANNEL>-<random>` and
//    PUBLISHes {"response_channel": "<that>", "message": "ping"} on CHANNEL; a holder answers by
//    PUBLISHing str(time.time()) on the response channel. A holder that does not answer within
//    `unavailable_timeout` is reaped: every pubsub client named `<CHANNEL>-lock` is CLIENT KILLed
//    by id (as portalocker does), then the contender subscribes.
//  - Nothing but pings is ever published on CHANNEL (a legacy holder's thread dies on anything
//    else). Release stops the holder thread through a private channel
//    `<CHANNEL>-lock-release-<random hex>` that only this holder subscribes to.
//
// Semantics
//  - Owner: this object (its subscriber connection). Two RedisLock objects exclude each other,
//    even in one process. Exclusive only.
//  - Holder death or a dropped connection frees the lock at once (the server drops the
//    subscription); there is no TTL. A holder whose process is hung but whose socket is open keeps
//    the lock until a contender pings it and reaps it after `unavailable_timeout`.
//  - While held, a background thread reads the subscriber connection, answers pings, and sends a
//    PING when the connection was idle for `health_check_interval`. Any read error, an EOF
//    (CLIENT KILL, server restart) or an unanswered health PING marks the lock lost: owned() is
//    false and release() returns errc::lock_lost. The thread never re-subscribes.
//  - Waiting: portalocker polls with a fixed check_interval; here a waiter polls PUBSUB NUMSUB
//    with exponential backoff from 1 ms capped at `max_poll` (default 50 ms, with jitter) — Redis
//    gives no event when a subscriber goes away, and legacy holders publish nothing on release.
//    A holder seen by a waiter is pinged at once and again every `probe_interval`, so a hung
//    holder is reaped. A ping may take up to `unavailable_timeout` beyond the caller's deadline
//    (as in portalocker). A PUBLISH that reaches no subscriber skips the wait (holder just left).
//  - Two contenders subscribing at once both see NUMSUB 2 and both back off (portalocker's rule).
//  - release() returns once the server confirmed the UNSUBSCRIBE, so the lock is free for others
//    when it returns. If the main connection is broken the release PUBLISH cannot reach the
//    thread; release then waits for the thread's health check (at most health_check_interval +
//    command_timeout).
//  - fork(): connections and the thread do not survive into a child; create the object after it.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "locksmith/lockable.hpp"
#include "locksmith/redis/connection.hpp"

namespace locksmith::redis {

struct PubSubOptions {
  // How long lock() waits; nullopt = forever. try_lock*() ignore it.
  std::optional<Clock::duration> timeout;
  bool fail_when_locked = false;  // lock() fails at once with AlreadyLocked instead of waiting
  // How long a pinged holder may take to answer before it is reaped (portalocker's
  // unavailable_timeout, default 1 s).
  Clock::duration unavailable_timeout = std::chrono::seconds(1);
  // The holder thread PINGs an idle subscriber connection this often (portalocker's
  // health_check_interval default).
  Clock::duration health_check_interval = std::chrono::seconds(10);
  // The longest pause between two NUMSUB polls of a waiter.
  Clock::duration max_poll = std::chrono::milliseconds(50);
  // A waiter re-pings a holder it keeps seeing this often (to reap one that hung).
  Clock::duration probe_interval = std::chrono::seconds(1);
};

class RedisLock : public Lockable {
 public:
  RedisLock(ConnectOptions server, std::string channel, PubSubOptions options = {});
  RedisLock(const RedisLock&) = delete;
  RedisLock& operator=(const RedisLock&) = delete;
  ~RedisLock() override;

  // mode must be exclusive (errc::unsupported otherwise). Acquiring while held:
  // std::errc::resource_deadlock_would_occur.
  std::error_code acquire(LockMode mode, Clock::time_point deadline) noexcept override;
  // errc::not_locked when not held; errc::lock_lost when the subscription was lost while held.
  std::error_code release() noexcept override;
  LockInfo describe() const override;
  bool supports_shared() const noexcept override { return false; }
  Clock::time_point default_deadline() const noexcept override;

  // Held and not lost.
  bool owned() const noexcept { return held_ && !lost_.load(); }
  bool held() const noexcept { return held_; }
  // The holder thread found the subscriber connection gone (or unresponsive).
  bool lost() const noexcept { return lost_.load(); }
  // How many pings this object's holder thread answered (since construction).
  std::uint64_t pings_answered() const noexcept { return pings_answered_.load(); }
  // How many clients this object's acquires CLIENT KILLed (since construction).
  std::uint64_t reaped() const noexcept { return reaped_; }

  const std::string& channel() const noexcept { return channel_; }
  // The subscriber connection's name: "<channel>-lock".
  const std::string& client_name() const noexcept { return client_name_; }
  const PubSubOptions& options() const noexcept { return options_; }
  // "host:port/channel".
  std::string target() const;
  // The full message of the last failure (server reply or OS error with host:port).
  std::string last_error() const;

 private:
  std::error_code numsub(long long& out);
  std::error_code probe(bool& alive, bool& nobody);
  std::error_code reap();
  std::error_code try_subscribe(bool& got);
  std::error_code unsubscribe_all() noexcept;
  void answer(const std::string& data) noexcept;
  void holder_loop() noexcept;
  void set_error(std::string message);

  std::string channel_;
  std::string client_name_;
  PubSubOptions options_;

  mutable std::mutex mu_;  // conn_ and last_error_ (the holder thread answers pings on conn_)
  Connection conn_;        // NUMSUB, PUBLISH, CLIENT LIST/KILL
  std::string last_error_;
  Connection sub_;    // the holder's subscriber connection (the thread's while it runs)
  Connection probe_;  // a contender's connection for ping answers

  bool held_ = false;
  std::string release_channel_;  // private channel that stops the holder thread
  std::thread thread_;
  std::atomic<bool> lost_{false};
  std::atomic<std::uint64_t> pings_answered_{0};
  std::uint64_t reaped_ = 0;
  std::uint64_t jitter_state_ = 0;
};

// Opens "redis+pubsub://[USER:PASSWORD@]HOST[:PORT]/CHANNEL?OPTIONS" as a RedisLock. Options:
// timeout, fail_when_locked, unavailable_timeout, health_check_interval, db, connect_timeout,
// command_timeout. Throws LockError(errc::invalid_spec) naming the spec (password hidden).
std::unique_ptr<Lockable> open_redis_pubsub_lock(std::string_view spec);

}  // namespace locksmith::redis
