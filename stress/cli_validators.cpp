#include "cli_validators.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <optional>
#include <string_view>

namespace locksmith::cli {
namespace {

// The whole of `text` as a double (nan and inf included: the callers refuse them by name).
std::optional<double> to_double(std::string_view text) {
  if (!text.empty() && text.front() == '+') text.remove_prefix(1);
  double v = 0;
  const char* end = text.data() + text.size();
  const auto [ptr, err] = std::from_chars(text.data(), end, v);
  if (text.empty() || err != std::errc() || ptr != end) return std::nullopt;
  return v;
}

std::optional<long long> to_integer(std::string_view text) {
  if (!text.empty() && text.front() == '+') text.remove_prefix(1);
  long long v = 0;
  const char* end = text.data() + text.size();
  const auto [ptr, err] = std::from_chars(text.data(), end, v);
  if (text.empty() || err != std::errc() || ptr != end) return std::nullopt;
  return v;
}

// 1000000000, 0.001: as a person writes them (no trailing zeros, no exponent).
std::string plain(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3f", v);
  std::string s = buf;
  while (s.back() == '0') s.pop_back();
  if (s.back() == '.') s.pop_back();
  return s;
}

CLI::Validator seconds_from(double min, std::string min_means, std::string desc,
                            std::string instead_of_infinity) {
  return CLI::Validator(
      [min, min_means = std::move(min_means),
       instead_of_infinity = std::move(instead_of_infinity)](std::string& input) -> std::string {
        const std::optional<double> v = to_double(input);
        if (v && std::isfinite(*v) && *v >= min && *v <= kMaxSeconds) return {};
        std::string why = "must be a number of seconds from " + plain(min) + min_means + " to " +
                          plain(kMaxSeconds) + ", not '" + input + "'";
        if (v && std::isinf(*v) && *v > 0 && !instead_of_infinity.empty()) {
          why += " (" + instead_of_infinity + ")";
        }
        return why;
      },
      std::move(desc));
}

}  // namespace

CLI::Validator seconds_or_zero(const std::string& zero_means, std::string instead_of_infinity) {
  return seconds_from(0, " (" + zero_means + ")", "SECONDS>=0", std::move(instead_of_infinity));
}

CLI::Validator positive_seconds() { return seconds_from(0.001, "", "SECONDS>0", {}); }

CLI::Validator fraction() {
  return CLI::Validator(
      [](std::string& input) -> std::string {
        const std::optional<double> v = to_double(input);
        if (v && *v >= 0 && *v <= 1) return {};  // false for nan
        return "must be a fraction from 0 to 1 (e.g. 0.25), not '" + input + "'";
      },
      "0..1");
}

CLI::Validator whole_number(long long min, long long max) {
  return CLI::Validator(
      [min, max](std::string& input) -> std::string {
        const std::optional<long long> v = to_integer(input);
        if (v && *v >= min && *v <= max) return {};
        return "must be a whole number from " + std::to_string(min) + " to " + std::to_string(max) +
               ", not '" + input + "'";
      },
      std::to_string(min) + ".." + std::to_string(max));
}

}  // namespace locksmith::cli
