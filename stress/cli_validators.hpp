// CLI11 validators for the numbers `locksmith` takes, with messages that say what is wrong.
//
// CLI11's own Range / NonNegativeNumber / PositiveNumber accept nan (every comparison with it is
// false) and print their bounds with std::to_string, so a double option's message shows the
// 309-digit DBL_MAX. These refuse nan, inf and values past a sane bound, and print the bounds as
// a person writes them. CLI11 puts the option's name in front: "--timeout: must be ...".
#pragma once

#include <CLI/CLI.hpp>
#include <string>

namespace locksmith::cli {

// The longest number of seconds an option takes: about 31 years, parse_duration's bound too.
inline constexpr double kMaxSeconds = 1e9;

// A number of seconds from 0 to kMaxSeconds; `zero_means` says what 0 does ("do not wait").
// `instead_of_infinity` is added to the message when the value is inf ("leave --timeout out to
// wait forever").
CLI::Validator seconds_or_zero(const std::string& zero_means, std::string instead_of_infinity = {});
// A number of seconds from 0.001 (1 ms, the resolution the command uses) to kMaxSeconds.
CLI::Validator positive_seconds();
// A fraction from 0 to 1.
CLI::Validator fraction();
// A whole number from `min` to `max`.
CLI::Validator whole_number(long long min, long long max);

}  // namespace locksmith::cli
