// RedisLock: portalocker's pub/sub Redis lock, speaking portalocker 4.x's protocol 1 (shared mode,
// pending-writer election) while still recognising the legacy protocol of portalocker <= 3.2
// (Debian's python3-portalocker 2.2.1), so C++ and Python processes exclude each other on one
// channel.
//
// Protocol 1 (portalocker 4.x, wolph/portalocker portalocker/redis.py)
//  - The lock is held by a live SUBSCRIBE on CHANNEL; no key is written. Every contender has a
//    holder id (32 hex chars, random per object) and names its subscriber connection
//    `<CHANNEL>-lock-<holder_id>` (CLIENT SETNAME).
//  - A contender SUBSCRIBEs first (its thread answers pings from then on), then reads PUBSUB
//    NUMSUB CHANNEL: 1 means only itself, so the lock is its. Otherwise it probes: it subscribes
//    to `<CHANNEL>-<random hex>`, PUBLISHes {"message": "ping", "response_channel": "<that>"} on
//    CHANNEL and collects one reply per subscriber (itself included). A protocol-1 subscriber
//    replies {"holder_id": ID, "mode": "exclusive"|"pending"|"shared", "protocol": 1}; a legacy
//    one replies str(time.time()), counted as an exclusive holder.
//  - Shared: joins when every reply says "shared". Exclusive: waits as "pending"; when no reply
//    says "exclusive" and its id is the smallest "pending" id, it is the elected writer: it takes
//    the lock when no "shared" holder remains, otherwise it stays subscribed (pending), so shared
//    newcomers, who see a pending writer, back off and cannot starve it. Everyone else
//    unsubscribes and retries.
//  - A probe whose replies are fewer than the subscribers is inconclusive; then every pubsub
//    client named `<CHANNEL>-lock-<32 hex>` whose id did not answer, and `<CHANNEL>-lock` (a legacy
//    holder) when no legacy reply came, is CLIENT KILLed (reaped) once a subscriber that got the
//    ping stayed silent for unavailable_timeout. A probe during which the subscribers changed
//    (NUMSUB before, PUBLISH's receiver count, NUMSUB after differ) is inconclusive without
//    reaping.
//  - Nothing but pings is ever published on CHANNEL (a legacy holder's thread dies on anything
//    else). Release stops the holder thread through a private channel
//    `<CHANNEL>-lock-<holder_id>-release-<random hex>` that only this object subscribes to.
//
// Where this differs from portalocker 4.1 (deliberately)
//  - Claim, then verify: an exclusive contender switches its replies to "exclusive" BEFORE the
//    NUMSUB / probe that decides, and an elected writer probes once more after switching; it
//    takes the lock only if no other reply says exclusive or shared (else it goes back to
//    pending). portalocker switches after deciding, so a newcomer answered "pending" just
//    before the switch can also elect itself (two writers). Cost: none uncontended.
//  - An elected writer takes the lock even under fail_when_locked / try_lock when no shared
//    holder remains (portalocker 4.1 raises AlreadyLocked for an elected writer then).
//  - Replies that are neither a protocol-1 JSON object nor a number (a legacy timestamp) are
//    ignored instead of being counted as a legacy holder; a junk publisher on a response channel
//    cannot make up the expected number of replies.
//  - Reaping lists only pubsub clients (CLIENT LIST TYPE pubsub), and requires 32 hex chars
//    after `<CHANNEL>-lock-`: portalocker matches any suffix, so a contender on channel "x" would
//    reap holders of channel "x-lock".
//  - portalocker 4.2's "elected" reply field is not sent (it is optional on the wire).
//  - A probe waits for a reply from every subscriber its PUBLISH reached (PUBLISH's count), not
//    just for as many as NUMSUB said before, and is conclusive only when that count, NUMSUB
//    before and NUMSUB after agree: NUMSUB counts, not identities, so a departure plus an arrival
//    looked like no change. It reaps only when a subscriber the PUBLISH reached stayed silent for
//    unavailable_timeout (portalocker also reaps a contender that subscribed after its PUBLISH
//    and so never got the ping). NUMSUB also counts this object's private release channel, so
//    "1 subscriber" is known to be this object and not a peer while ours was just killed (see
//    collect() in pubsub_lock.cpp for the interleaving that gave two holders).
//
// Legacy interoperability (Debian's 2.2.1)
//  - A legacy contender pings and treats any message on its response channel as "held" (even
//    its own SUBSCRIBE confirmation, so 2.2.1 never reaps anyone): our JSON reply keeps it
//    waiting like a timestamp would. Its pings ({"response_channel", "message"}) are answered.
//  - A legacy holder names its connection `<CHANNEL>-lock`; we reap it by that name when it does
//    not answer. A legacy contender only reaps `<CHANNEL>-lock`, so it cannot reap a hung C++
//    holder (the same is true of portalocker 4.x holders): it waits until that holder's
//    connection drops. We keep the 4.x name so that 4.x peers reap a hung C++ holder.
//
// Semantics
//  - Owner: this object (its subscriber connection). Two RedisLock objects exclude each other
//    (or share, both shared), even in one process.
//  - Holder death or a dropped connection frees the lock at once (the server drops the
//    subscription); there is no TTL. A holder whose process is hung but whose socket is open keeps
//    the lock until a contender probes it and reaps it after `unavailable_timeout`.
//  - While subscribed (holding or contending), a background thread reads the subscriber
//    connection, answers pings, and sends a PING when the connection was idle for
//    `health_check_interval`. Any read error, an EOF (CLIENT KILL, server restart) or an
//    unanswered health PING marks a held lock lost: owned() is false and release() returns
//    errc::lock_lost. The thread never re-subscribes.
//  - Deadlines: the acquire deadline bounds its connects and the round trips of its commands
//    (SUBSCRIBE, NUMSUB, PUBLISH, CLIENT LIST; an attempt at the deadline gets 200 ms), though
//    not the wait for pinged subscribers' answers (below). A server that does not answer in time,
//    refuses the connection or resets it makes acquire() return that OS error (ETIMEDOUT,
//    ECONNREFUSED, ...; message() names host:port), never errc::timeout / errc::busy, which mean
//    that another subscriber holds the channel. Waiting forever or trying once, connect_timeout
//    and command_timeout bound each step. A server that hangs while this object is subscribed
//    and contending can still cost up to health_check_interval + command_timeout more: leaving
//    waits for the holder thread, which notices the hang by its health check.
//  - Waiting: a waiter retries with exponential backoff from 1 ms capped at `max_poll` (with
//    jitter): Redis gives no event when a subscriber goes away, and legacy holders publish
//    nothing on release. A probe may take up to `unavailable_timeout` beyond the caller's
//    deadline (as in portalocker).
//  - release() returns once the server confirmed the UNSUBSCRIBE, so the lock is free for others
//    when it returns. If the main connection is broken the release PUBLISH cannot reach the
//    thread; release then waits for the thread's health check (at most health_check_interval +
//    command_timeout).
//  - fork(): connections and the thread do not survive into a child; create the object after it.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

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
  // lock() / try_lock*() take the lock shared (spec option shared=1); lock_shared() always does.
  bool shared = false;
};

// What one subscriber of the channel answered to a probe.
struct PubSubHolder {
  std::string holder_id;  // "legacy-N" for a legacy (timestamp) reply
  LockMode mode = LockMode::exclusive;
  bool pending = false;  // an exclusive contender not yet holding ("pending")
  bool legacy = false;
};

class RedisLock : public Lockable {
 public:
  RedisLock(ConnectOptions server, std::string channel, PubSubOptions options = {});
  RedisLock(const RedisLock&) = delete;
  RedisLock& operator=(const RedisLock&) = delete;
  ~RedisLock() override;

  // Exclusive or shared. Acquiring while held: std::errc::resource_deadlock_would_occur.
  std::error_code acquire(LockMode mode, Clock::time_point deadline) noexcept override;
  // errc::not_locked when not held; errc::lock_lost when the subscription was lost while held.
  std::error_code release() noexcept override;
  LockInfo describe() const override;
  bool supports_shared() const noexcept override { return true; }
  Clock::time_point default_deadline() const noexcept override;
  LockMode default_mode() const noexcept override {
    return options_.shared ? LockMode::shared : LockMode::exclusive;
  }

  // Held and not lost.
  bool owned() const noexcept { return held_ && !lost_.load(); }
  bool held() const noexcept { return held_; }
  // The holder thread found the subscriber connection gone (or unresponsive).
  bool lost() const noexcept override { return lost_.load(); }

  // Lock loss (lockable.hpp): the subscriber thread finds a dropped connection at once (EOF, a
  // read error) and a silent one within health_check_interval + command timeout; it then calls
  // the on_loss() notice at once. keep_alive() only reports what the thread found (no I/O).
  Clock::duration keep_alive_interval() const noexcept override {
    return options_.health_check_interval;
  }
  std::error_code keep_alive() noexcept override;
  bool on_loss(const std::function<void()>& notice) noexcept override;
  // How many pings this object's holder thread answered (since construction).
  std::uint64_t pings_answered() const noexcept { return pings_answered_.load(); }
  // How many clients this object's acquires CLIENT KILLed (since construction).
  std::uint64_t reaped() const noexcept { return reaped_; }

  const std::string& channel() const noexcept { return channel_; }
  // This object's protocol-1 holder id (32 hex chars, random per object).
  const std::string& holder_id() const noexcept { return holder_id_; }
  // The subscriber connection's name: "<channel>-lock-<holder_id>".
  const std::string& client_name() const noexcept { return client_name_; }
  // The mode held (nullopt when not held).
  std::optional<LockMode> held_mode() const noexcept {
    return held_ ? std::optional<LockMode>(held_mode_) : std::nullopt;
  }
  // Probes the channel as an acquire would (ping, collect one reply per subscriber) without
  // subscribing to it and without reaping; errc::timeout when some subscriber did not answer
  // within unavailable_timeout or the subscribers changed meanwhile.
  std::error_code probe(std::vector<PubSubHolder>& holders);
  const PubSubOptions& options() const noexcept { return options_; }
  // "host:port/channel".
  std::string target() const;
  // The full message of the last failure (server reply or OS error with host:port).
  std::string last_error() const;

 private:
  enum class Reply1 : int { pending = 0, exclusive = 1, shared = 2 };
  std::error_code numsub(long long& out, bool& self);
  std::error_code collect(long long expected, bool reap_missing, std::vector<PubSubHolder>& out,
                          bool& conclusive);
  std::error_code reap(const std::vector<PubSubHolder>& responders);
  std::error_code subscribe();
  std::error_code leave() noexcept;  // stop the thread and unsubscribe (not held)
  std::error_code unsubscribe_all() noexcept;
  void answer(const std::string& data) noexcept;
  void holder_loop() noexcept;
  void set_error(std::string message);

  std::string channel_;
  std::string holder_id_;
  std::string client_name_;
  std::string legacy_name_;  // "<channel>-lock": a legacy holder's connection name
  PubSubOptions options_;

  mutable std::mutex mu_;  // conn_ and last_error_ (the holder thread answers pings on conn_)
  Connection conn_;        // NUMSUB, PUBLISH, CLIENT LIST/KILL
  std::string last_error_;
  Connection sub_;    // the holder's subscriber connection (the thread's while it runs)
  Connection probe_;  // a contender's connection for ping answers

  bool held_ = false;
  bool subscribed_ = false;  // sub_ is on the channel and the thread runs (held or contending)
  LockMode held_mode_ = LockMode::exclusive;
  std::atomic<int> reply_mode_{0};  // Reply1: what the thread answers to pings
  std::string release_channel_;     // private channel that stops the holder thread
  std::thread thread_;
  std::atomic<bool> lost_{false};
  std::mutex notice_mu_;  // notice_
  std::function<void()> notice_;
  std::atomic<std::uint64_t> pings_answered_{0};
  std::uint64_t reaped_ = 0;
  std::uint64_t jitter_state_ = 0;
  // The I/O deadline of the current acquire round (detail::io_deadline), kNoDeadline outside an
  // acquire: bounds conn_ (under mu_), probe_, and sub_ until the holder thread starts.
  Clock::time_point io_ = Connection::kNoDeadline;
};

// Opens "redis+pubsub://[USER:PASSWORD@]HOST[:PORT]/CHANNEL?OPTIONS" as a RedisLock. Options:
// timeout, fail_when_locked, unavailable_timeout, health_check_interval, shared (0/1), db,
// connect_timeout, command_timeout. Throws LockError(errc::invalid_spec) naming the spec (password
// hidden).
std::unique_ptr<Lockable> open_redis_pubsub_lock(std::string_view spec);

}  // namespace locksmith::redis
