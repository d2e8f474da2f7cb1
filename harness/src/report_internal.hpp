// Helpers shared by the report writers (report.cpp, report_formats.cpp, report_html.cpp).
// Internal to the harness library: not installed, not included by users.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "locksmith/harness/checkers.hpp"
#include "locksmith/harness/report.hpp"

namespace locksmith::harness::report_detail {

// The number of critical sections summarize() keeps for the HTML timeline (violation intervals
// come on top of this budget, up to kTimelineViolationCap) and the size of the wait sample.
inline constexpr std::size_t kTimelineSample = 3000;
inline constexpr std::size_t kTimelineViolationCap = 20000;
inline constexpr std::size_t kWaitSample = 5000;

// `s` with every invalid UTF-8 sequence replaced by U+FFFD. Lock paths are bytes, not text.
std::string valid_utf8(std::string_view s);

// Text safe inside XML 1.0 and HTML (element content and double- or single-quoted attributes):
// valid UTF-8, & < > " ' as character references, characters XML 1.0 forbids (C0 controls other
// than tab/newline/return, U+FFFE, U+FFFF) replaced by U+FFFD. With `attribute`, tab, newline
// and return become character references so that attribute-value normalisation keeps them.
std::string xml_escape(std::string_view s, bool attribute = false);

// Text safe to print on a terminal: valid UTF-8 and no control characters (an ESC in a lock path
// must not reach the terminal); each control character becomes '?'.
std::string console_safe(std::string_view s);

// A wait or duration given in microseconds, human-readable: "850 µs", "12.3 ms", "1.52 s".
// `ascii` spells microseconds "us" (for terminals without UTF-8).
std::string format_us(double us, bool ascii = false);

// "SAFE" / "UNSAFE" / "INCONCLUSIVE" / "UNSUPPORTED" for the whole report: UNSAFE when any
// primitive is unsafe, else INCONCLUSIVE when any is inconclusive, else SAFE when at least one is
// safe, UNSUPPORTED otherwise (including no primitive).
const char* overall_verdict(const Report& r) noexcept;

// True when the violation has a time range (not both ends zero).
bool has_range(const Violation& v) noexcept;
// True when `iv` took part in `v`: it overlaps v's time range and, when v names workers, belongs
// to one of them.
bool involved(const Interval& iv, const Violation& v) noexcept;

// A number as JSON/XML-friendly text: integers without a fraction, others with up to 6
// significant digits; NaN and infinities as "null".
std::string number_text(double v);

}  // namespace locksmith::harness::report_detail
