// Internal to locksmith::redis: the scripts a registered RedisLease shares with LeaseRegistry
// (registry.cpp).
#pragma once

#include <string>
#include <vector>

#include "locksmith/redis/connection.hpp"

namespace locksmith::redis::detail {

// The acquire script of a registered lease: the plain acquire script, plus, on success only,
// DEL <info>, HSET <info> FIELDS.. fence F token_sha1 SHA1(token), SADD <index> <key>.
// KEYS: key, fence key, info key, index key. ARGV: token, ttl ms, key, then field/value pairs.
// Returns {1, fence} or {0, pttl of the holder's key}.
const Script& registered_acquire_script();

// Owner release of a registered lease: when the key holds ARGV[1], deletes it and the record,
// removes ARGV[2] from the index and publishes on the channel.
// KEYS: key, channel, info key, index key. ARGV: token, key.
// Returns 1 released, 0 the key does not exist, -1 the key holds another token.
const Script& registered_release_script();

}  // namespace locksmith::redis::detail
