// Internal to locksmith::redis: random bytes and owner tokens from the OS (getrandom).
#pragma once

#include <cstddef>
#include <string>
#include <system_error>

namespace locksmith::redis::detail {

// Fills `size` bytes from getrandom(2), retrying EINTR and short reads.
std::error_code random_bytes(void* out, std::size_t size) noexcept;
// 32 lower-case hex characters (128 random bits): the owner token of every Redis lock here, in
// the shape of redis-py's uuid1().hex.
std::error_code new_token(std::string& out);

}  // namespace locksmith::redis::detail
