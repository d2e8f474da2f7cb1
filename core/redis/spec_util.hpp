// Internal to locksmith::redis: the pieces every URL-style spec parser here shares (spec.cpp).
#pragma once

#include <string>
#include <string_view>

#include "locksmith/lockable.hpp"

namespace locksmith::redis::detail {

// Throws LockError(errc::invalid_spec) "invalid lock spec (WHY)" naming the spec, password hidden.
[[noreturn]] void bad(std::string_view spec, const std::string& why);
int hex_value(char c);
// %-decodes `text` (the WHAT of the spec: "key", "password", ...).
std::string decode(std::string_view spec, std::string_view what, std::string_view text);
long parse_number(std::string_view spec, std::string_view what, std::string_view text, long min,
                  long max);
bool parse_flag(std::string_view spec, std::string_view key, std::string_view value);
Clock::duration duration_option(std::string_view spec, std::string_view key,
                                std::string_view value);
// Refuses a query (the options after '?') that gives a key twice: which one was meant is a guess.
void reject_repeated_options(std::string_view spec, std::string_view query);

}  // namespace locksmith::redis::detail
