// LeaseRegistry: named, inspectable leases on Redis (Relukko's lease service, on RedisLease).
//
// Layout (prefix "locksmith:lease:" by default)
//  - A lease NAME is the RedisLease key PREFIX+NAME: the key holds the owner's token, with
//    `<key>:fence` and `<key>:released` as for any RedisLease, so redis-py Locks and plain
//    RedisLeases on that key exclude registered ones and the other way round.
//  - The record is the hash `<key>:info`: creator, host, pid, created_ms (Unix ms), fence and
//    token_sha1 (SHA1 of the owner's token; the token itself is never stored: it is what lets
//    an owner release). It is written by the acquire script, only when the acquire succeeds.
//  - The index is the set PREFIX+"index" of the keys of registered leases.
//
// Semantics
//  - list()/show() read key, PTTL and record in one script: a key that is gone (released by
//    someone who does not know the registry, or expired) has its record deleted and its index
//    entry removed, and is not listed; a key whose token's SHA1 does not match the record is
//    listed as held by an unregistered owner (redis-py, a plain RedisLease) without the stale
//    record's fields.
//  - release, keep_alive and extend are owner-only: they compare the token in the same script;
//    errc::not_locked when the lease does not exist, errc::lock_lost when someone else holds it.
//  - force_release() is the only call that ignores tokens: it deletes whoever holds the lease.
//  - The scripts of list() touch keys named in the index (not passed as KEYS): standalone Redis
//    or a single Redis Cluster slot (use a hash-tagged prefix such as "{locks}:") only.
//  - Not thread-safe: one LeaseRegistry holds one connection.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "locksmith/redis/connection.hpp"
#include "locksmith/redis/lease.hpp"

namespace locksmith::redis {

struct LeaseRecord {
  enum class State {
    registered,    // held by the owner the record describes
    unregistered,  // held by someone who left no record (redis-py, a plain RedisLease)
    wrong_type,    // the key holds something other than a lease token
  };
  std::string name;
  std::string key;
  State state = State::registered;
  // The record's fields (empty / nullopt unless state is registered).
  std::string creator;
  std::string host;
  std::optional<long long> pid;
  std::optional<std::chrono::system_clock::time_point> created;
  std::optional<std::uint64_t> fence;
  // The key's PTTL; nullopt when the key has no expiry.
  std::optional<std::chrono::milliseconds> ttl_remaining;
};

// "held", "held by an unregistered owner", "not a lease (wrong type)".
const char* to_string(LeaseRecord::State s) noexcept;

class LeaseRegistry {
 public:
  // Lease names are 1 to kMaxNameBytes bytes without control characters (a newline would
  // forge lines of `leases list` and of logs), and not "index" (the index's own key).
  static constexpr std::size_t kMaxNameBytes = 512;
  // Why `name` is not a valid lease name ("" when it is); the name is shown escaped and cut.
  static std::string name_problem(std::string_view name);

  explicit LeaseRegistry(ConnectOptions server, std::string prefix = "locksmith:lease:");

  // A RedisLease on the lease `name` whose acquisitions write the record (creator, this host's
  // name, this process's pid, the time of the call); fields in options.info replace those (a
  // "pid" of the process the lease is taken for, say) or are added (fence and token_sha1 are
  // always the acquire's own). Throws LockError(errc::invalid_spec) on an invalid name
  // (name_problem()).
  std::unique_ptr<RedisLease> open(std::string_view name, std::string creator,
                                   LeaseOptions options = {}) const;

  // Every live lease of the index, pruning the records of leases that are gone.
  std::error_code list(std::vector<LeaseRecord>& out);
  // The lease `name` (registered or not); nullopt when nobody holds it.
  std::error_code show(std::string_view name, std::optional<LeaseRecord>& out);

  // Owner-only: release; set the PTTL to `ttl`; add `by` to the PTTL.
  std::error_code release(std::string_view name, std::string_view token);
  std::error_code keep_alive(std::string_view name, std::string_view token,
                             std::chrono::milliseconds ttl);
  std::error_code extend(std::string_view name, std::string_view token,
                         std::chrono::milliseconds by);
  // Deletes the lease whoever holds it (and its record), and publishes the release.
  // `existed` tells whether there was a lease to delete.
  std::error_code force_release(std::string_view name, bool* existed = nullptr);

  std::string key(std::string_view name) const { return prefix_ + std::string(name); }
  const std::string& prefix() const noexcept { return prefix_; }
  const std::string& index_key() const noexcept { return index_; }
  const ConnectOptions& server() const noexcept { return server_; }
  // "host:port".
  std::string endpoint() const { return conn_.endpoint(); }
  // The full message of the last failure (server reply or OS error, with host:port).
  const std::string& last_error() const noexcept { return last_error_; }

 private:
  std::error_code check_name(std::string_view name);
  std::error_code read(const std::vector<std::string>& keys, std::vector<LeaseRecord>& out);
  std::error_code owner_script(std::string_view what, std::string_view name, std::string_view token,
                               std::chrono::milliseconds ms, bool replace);

  ConnectOptions server_;
  std::string prefix_;
  std::string index_;
  Connection conn_;
  std::string last_error_;
};

}  // namespace locksmith::redis
