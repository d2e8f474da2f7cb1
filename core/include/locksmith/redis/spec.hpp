// redis:// lock specs: RedisLease from one string.
//
//   redis://[USER:PASSWORD@ | :PASSWORD@]HOST[:PORT]/KEY?OPTIONS
//
// PORT defaults to 6379; USER, PASSWORD and KEY may be %-encoded; an IPv6 HOST goes in brackets.
// Options:
//   ttl=DURATION           lease time to live (default 30s; at least 1ms)
//   timeout=DURATION       how long lock() waits (default forever)
//   fail_when_locked=1     lock() does not wait
//   refresh=1              background refresh every ttl/3 while held
//   fence=0                no fencing number: acquire is a plain SET NX PX (see
//   LeaseOptions::fence) db=N                   SELECT N connect_timeout=DURATION,
//   command_timeout=DURATION   (default 5s each)
// Messages never show the password.
#pragma once

#include <memory>
#include <string_view>

#include "locksmith/lockable.hpp"
#include "locksmith/redis/connection.hpp"
#include "locksmith/redis/lease.hpp"

namespace locksmith::redis {

struct RedisSpec {
  ConnectOptions server;
  std::string key;
  LeaseOptions options;
};

// Throws LockError(errc::invalid_spec) naming the spec (password hidden) on bad input.
RedisSpec parse_redis_spec(std::string_view spec);

// Opens "redis://..." as a RedisLease; throws as parse_redis_spec().
std::unique_ptr<Lockable> open_redis_lock(std::string_view spec);

// Registers redis://, redis+pubsub:// and redlock:// with locksmith::open_lock(). Call once;
// thread-safe.
void register_redis_schemes();

}  // namespace locksmith::redis
