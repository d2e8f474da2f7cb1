// Internal: helpers shared by link_lock.cpp and link_lock_posix.cpp.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <system_error>

namespace locksmith::detail {

// The pid field of a claim as Python's int() reads it (decimal, optional sign); nullopt otherwise.
std::optional<long> parse_claim_pid(std::string_view text) noexcept;

// flufl's random.randint(0, sys.maxsize): a decimal in [0, 2^63) from the OS random source.
std::error_code random_claim_number(std::string& out) noexcept;

}  // namespace locksmith::detail
