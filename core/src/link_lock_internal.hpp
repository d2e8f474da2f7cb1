// Internal: helpers shared by link_lock.cpp and link_lock_posix.cpp.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include "locksmith/link_lock.hpp"

namespace locksmith::detail {

// Whether a parsed claim can be one of `lockfile`'s: a claim of four fields always is (flufl's
// rule); one whose lock file part contains the separator only when that path ends in the same
// file name, so that foreign content with many separators is still never taken for a claim.
bool claim_names_lock(const LinkClaim& claim, const std::filesystem::path& lockfile,
                      char separator) noexcept;

// The pid field of a claim as Python's int() reads it (decimal, optional sign); nullopt otherwise.
std::optional<long> parse_claim_pid(std::string_view text) noexcept;

// flufl's random.randint(0, sys.maxsize): a decimal in [0, 2^63) from the OS random source.
std::error_code random_claim_number(std::string& out) noexcept;

}  // namespace locksmith::detail
