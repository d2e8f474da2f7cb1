// Holder records of the existence locks: the text format and lockfile's names. Portable; what
// the records are checked against (/proc, kill) is in holder_record_posix.cpp.
#include "holder_record.hpp"

#include <algorithm>
#include <charconv>

namespace locksmith::detail {

namespace {

constexpr std::string_view kTag = "locksmith-holder ";
// Linux's PID_MAX_LIMIT: no pid is larger, whatever kernel.pid_max says.
constexpr long kPidMaxLimit = 4194304;

bool blank(char c) noexcept { return c == ' ' || (c >= '\t' && c <= '\r'); }

bool all_of(std::string_view s, bool (*pred)(char)) noexcept {
  return !s.empty() && std::all_of(s.begin(), s.end(), pred);
}
bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }
bool is_lower_hex(char c) noexcept { return is_digit(c) || (c >= 'a' && c <= 'f'); }

// A pid as Python's "%d" writes it: digits, no leading zero, within the kernel's limit.
std::optional<long> plain_pid(std::string_view s) noexcept {
  if (!all_of(s, is_digit) || s.front() == '0' || s.size() > 7) return std::nullopt;
  long value = 0;
  std::from_chars(s.data(), s.data() + s.size(), value);
  if (value > kPidMaxLimit) return std::nullopt;
  return value;
}

}  // namespace

std::string record_host(std::string host) {
  std::replace_if(
      host.begin(), host.end(), [](char c) { return c == '\n' || c == '\r'; }, '?');
  return host;
}

std::optional<long> parse_pid_line(std::string_view s) noexcept {
  s = s.substr(0, s.find('\n'));
  while (!s.empty() && blank(s.front())) s.remove_prefix(1);
  while (!s.empty() && blank(s.back())) s.remove_suffix(1);
  bool negative = false;
  if (!s.empty() && (s.front() == '+' || s.front() == '-')) {
    negative = s.front() == '-';
    s.remove_prefix(1);
  }
  long value = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return negative ? -value : value;
}

std::string format_holder(const HolderRecord& record) {
  std::string out = std::to_string(record.pid.value_or(0)) + "\n";
  if (!record.start_ticks && record.boot_id.empty() && record.pid_ns.empty() && !record.host) {
    return out;
  }
  out += kTag;
  out += "v=1";
  if (record.start_ticks) out += " start=" + std::to_string(*record.start_ticks);
  if (!record.boot_id.empty()) out += " boot=" + record.boot_id;
  if (!record.pid_ns.empty()) out += " pidns=" + record.pid_ns;
  if (record.host) out += " host=" + record_host(*record.host);
  out += "\n";
  return out;
}

HolderRecord parse_holder(std::string_view text) {
  HolderRecord record;
  record.pid = parse_pid_line(text);
  const std::size_t nl = text.find('\n');
  if (nl == std::string_view::npos) return record;
  std::string_view line = text.substr(nl + 1);
  line = line.substr(0, line.find('\n'));
  if (line.substr(0, kTag.size()) != kTag) return record;
  line.remove_prefix(kTag.size());
  while (!line.empty()) {
    const std::size_t sp = line.find(' ');
    std::string_view token = line.substr(0, sp);
    if (token.substr(0, 5) == "host=") {
      record.host = std::string(line.substr(5));  // the rest of the line
      break;
    }
    line = sp == std::string_view::npos ? std::string_view{} : line.substr(sp + 1);
    const std::size_t eq = token.find('=');
    if (eq == std::string_view::npos) continue;
    const std::string_view key = token.substr(0, eq), value = token.substr(eq + 1);
    if (key == "start" && all_of(value, is_digit)) {
      std::uint64_t ticks = 0;
      if (std::from_chars(value.data(), value.data() + value.size(), ticks).ec == std::errc()) {
        record.start_ticks = ticks;
      }
    } else if (key == "boot") {
      record.boot_id = std::string(value);
    } else if (key == "pidns") {
      record.pid_ns = std::string(value);
    }
  }
  return record;
}

HolderRecord parse_lockfile_unique_name(std::string_view name, std::string_view own_host) {
  HolderRecord record;
  if (name.size() <= own_host.size() || name.substr(0, own_host.size()) != own_host ||
      name[own_host.size()] != '.') {
    // Another host's name: everything before the last '.', which cannot be `own_host`.
    record.host = std::string(name.substr(0, name.rfind('.')));
    return record;
  }
  record.host = std::string(own_host);
  const std::string_view rest = name.substr(own_host.size() + 1);
  if (const auto pid = plain_pid(rest)) {  // threaded=False: "host.PID"
    record.pid = pid;
    return record;
  }
  if (rest.empty() || rest.front() != '-') return record;  // not lockfile's: no pid
  const std::string_view digits = rest.substr(1);
  for (std::size_t k = 1; k <= 8 && k < digits.size(); ++k) {
    if (!all_of(digits.substr(0, k), is_lower_hex)) break;
    if (const auto pid = plain_pid(digits.substr(k))) record.pid_candidates.push_back(*pid);
  }
  if (record.pid_candidates.size() == 1) {
    record.pid = record.pid_candidates.front();
    record.pid_candidates.clear();
  }
  return record;
}

}  // namespace locksmith::detail
