// Internal to locksmith::redis: the scripts RedisLease shares with LeaseRegistry
// (registry.cpp).
#pragma once

#include <string>
#include <vector>

#include "locksmith/redis/connection.hpp"

namespace locksmith::redis::detail {

// The start of both acquire scripts (KEYS: key, fence key; ARGV: token, ttl ms): SET NX PX (a key
// that already holds our token is ours too: an earlier attempt whose reply was lost), returning
// {0, pttl of the holder's key} when it did not take; then INCR of the fence key into `fence` (a
// failing INCR, on a fence key of another type, undoes the SET and returns the error, so an error
// never leaves the key set). A fence key that INCR creates starts from the server's clock in
// microseconds instead, so fences keep increasing across a data loss.
extern const char* const kTakeWithFenceLua;

// Deletes the key whoever holds it and publishes on the channel; with four KEYS (a registered
// lease) also deletes the record and removes ARGV[1] from the index.
// KEYS: key, channel[, info key, index key]. Returns how many keys were deleted (0 or 1).
const Script& force_release_script();

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
