// LinkLock: the portable parts (claim format and parsing, lock-file reading, describe).
// The file-system protocol itself is in link_lock_posix.cpp.
#include "locksmith/link_lock.hpp"

#include <charconv>
#include <cstdint>
#include <string>
#include <utility>

#include "file_ops.hpp"
#include "link_lock_internal.hpp"

namespace locksmith {
namespace {

// Python's str.strip() for the ASCII whitespace a claim can carry.
std::string_view strip(std::string_view s) noexcept {
  constexpr std::string_view kSpace = " \t\n\r\v\f";
  const auto first = s.find_first_not_of(kSpace);
  if (first == std::string_view::npos) return {};
  const auto last = s.find_last_not_of(kSpace);
  return s.substr(first, last - first + 1);
}

}  // namespace

std::string_view to_string(LinkState s) noexcept {
  switch (s) {
    case LinkState::unlocked:
      return "unlocked";
    case LinkState::ours:
      return "ours";
    case LinkState::ours_expired:
      return "ours_expired";
    case LinkState::stale:
      return "stale";
    case LinkState::theirs_expired:
      return "theirs_expired";
    case LinkState::unknown:
      return "unknown";
  }
  return "unknown";
}

std::optional<LinkClaim> parse_link_claim(std::string_view content, char separator) {
  content = strip(content);
  // From the right, as the claim name is built: only the lock file path can contain the
  // separator, the host name, pid and random number cannot.
  std::string_view tail[3];
  for (int i = 2; i >= 0; --i) {
    const auto pos = content.rfind(separator);
    if (pos == std::string_view::npos) return std::nullopt;
    tail[i] = content.substr(pos + 1);
    content = content.substr(0, pos);
  }
  return LinkClaim{std::string(content), std::string(tail[0]), std::string(tail[1]),
                   std::string(tail[2])};
}

namespace detail {

bool claim_names_lock(const LinkClaim& claim, const std::filesystem::path& lockfile,
                      char separator) noexcept {
  if (claim.lockfile.find(separator) == std::string::npos) return true;  // four fields
  try {
    return std::filesystem::path(claim.lockfile).filename() == lockfile.filename();
  } catch (...) {
    return false;  // out of memory: not judged a claim, so nothing is broken
  }
}

std::optional<long> parse_claim_pid(std::string_view text) noexcept {
  text = strip(text);
  if (!text.empty() && text.front() == '+') text.remove_prefix(1);
  long pid = 0;
  const auto* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, pid);
  if (text.empty() || ec != std::errc() || ptr != end) return std::nullopt;
  return pid;
}

std::error_code random_claim_number(std::string& out) noexcept {
  std::string hex;
  if (std::error_code ec = random_hex(8, hex)) return ec;
  std::uint64_t v = 0;
  std::from_chars(hex.data(), hex.data() + hex.size(), v, 16);
  v &= ~(std::uint64_t{1} << 63);
  out = std::to_string(v);
  return {};
}

}  // namespace detail

LockInfo LinkLock::describe() const {
  LockInfo info;
  info.kind = "link";
  info.mechanism = "link";
  info.target = lockfile_str_;
  info.held = held_;
  if (held_) {
    info.mode = LockMode::exclusive;
    info.token = claim_;
  }
  return info;
}

Clock::time_point LinkLock::default_deadline() const noexcept {
  return policy_deadline(options_.timeout, options_.fail_when_locked);
}

std::optional<LinkDetails> LinkLock::details() const {
  std::string content;
  const std::error_code ec = detail::read_small_file(lockfile_, content);
  if (ec == std::errc::no_such_file_or_directory) return std::nullopt;
  throw_if_error(ec, "cannot read lock file", lockfile_str_);
  const auto claim = parse_link_claim(content, options_.separator);
  if (!claim || !detail::claim_names_lock(*claim, lockfile_, options_.separator)) {
    return std::nullopt;
  }
  const auto pid = detail::parse_claim_pid(claim->pid);
  if (!pid) return std::nullopt;
  return LinkDetails{claim->hostname, *pid, claim->lockfile};
}

#if defined(LOCKSMITH_OS_WINDOWS)
// Hard-link claims on Windows (CreateHardLink, separator '^') are not implemented yet.

const std::string& link_lock_hostname() {
  static const std::string name = "localhost";
  return name;
}

LinkLock::LinkLock(std::filesystem::path lockfile, LinkLockOptions options)
    : lockfile_(std::move(lockfile)),
      lockfile_str_(lockfile_.string()),
      options_(std::move(options)),
      hostname_(options_.hostname.empty() ? link_lock_hostname() : options_.hostname) {}

LinkLock::~LinkLock() = default;

std::error_code LinkLock::acquire(LockMode, Clock::time_point) noexcept {
  return make_error_code(errc::unsupported);
}
std::error_code LinkLock::release() noexcept { return make_error_code(errc::not_locked); }
std::error_code LinkLock::refresh(std::optional<std::chrono::milliseconds>) noexcept {
  return make_error_code(errc::unsupported);
}
std::error_code LinkLock::keep_alive() noexcept { return make_error_code(errc::not_locked); }
bool LinkLock::is_locked() noexcept { return false; }
LinkState LinkLock::state() const { return LinkState::unknown; }
std::optional<std::chrono::system_clock::time_point> LinkLock::expiration() const {
  return std::nullopt;
}
#endif

}  // namespace locksmith
