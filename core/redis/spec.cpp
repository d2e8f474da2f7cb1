#include "locksmith/redis/spec.hpp"

#include <algorithm>
#include <charconv>
#include <string>
#include <vector>

#include "locksmith/error.hpp"
#include "locksmith/redis/pubsub_lock.hpp"
#include "locksmith/redis/redlock.hpp"
#include "locksmith/spec.hpp"
#include "spec_util.hpp"

namespace locksmith::redis {
namespace {
std::string redacted(std::string_view spec);
}  // namespace

namespace detail {

[[noreturn]] void bad(std::string_view spec, const std::string& why) {
  throw LockError(locksmith::make_error_code(locksmith::errc::invalid_spec),
                  "invalid lock spec (" + why + ")", redacted(spec));
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string decode(std::string_view spec, std::string_view what, std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out.push_back(text[i]);
      continue;
    }
    const int hi = i + 2 < text.size() ? hex_value(text[i + 1]) : -1;
    const int lo = i + 2 < text.size() ? hex_value(text[i + 2]) : -1;
    if (hi < 0 || lo < 0) bad(spec, "bad %-escape in the " + std::string(what));
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return out;
}

long parse_number(std::string_view spec, std::string_view what, std::string_view text, long min,
                  long max) {
  long v = 0;
  const auto* end = text.data() + text.size();
  const auto [ptr, err] = std::from_chars(text.data(), end, v);
  if (text.empty() || err != std::errc() || ptr != end || v < min || v > max) {
    bad(spec, std::string(what) + " must be a number from " + std::to_string(min) + " to " +
                  std::to_string(max) + ", not '" + std::string(text) + "'");
  }
  return v;
}

bool parse_flag(std::string_view spec, std::string_view key, std::string_view value) {
  if (value == "1" || value == "true" || value == "yes" || value.empty()) return true;
  if (value == "0" || value == "false" || value == "no") return false;
  bad(spec, std::string(key) + " must be 1 or 0, not '" + std::string(value) + "'");
}

Clock::duration duration_option(std::string_view spec, std::string_view key,
                                std::string_view value) {
  try {
    return parse_duration(value);
  } catch (const LockError&) {
    bad(spec, std::string(key) + " must be a duration such as 250ms, 1.5s or 2m, not '" +
                  std::string(value) + "'");
  }
}

void reject_repeated_options(std::string_view spec, std::string_view query) {
  std::vector<std::string_view> seen;
  while (!query.empty()) {
    const auto amp = query.find('&');
    const std::string_view item = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (item.empty()) continue;
    const std::string_view key = item.substr(0, item.find('='));
    if (std::find(seen.begin(), seen.end(), key) != seen.end()) {
      bad(spec, "option '" + std::string(key) + "' given twice; give it once");
    }
    seen.push_back(key);
  }
}

}  // namespace detail

using namespace detail;  // NOLINT(google-build-using-namespace)

namespace {

constexpr std::string_view kScheme = "redis://";
constexpr std::string_view kOptions =
    "ttl, timeout, fail_when_locked, refresh, fence, db, connect_timeout, command_timeout";

// The spec as messages show it: the password replaced by ***.
std::string redacted(std::string_view spec) {
  if (spec.substr(0, kScheme.size()) != kScheme) return std::string(spec);
  const std::string_view rest = spec.substr(kScheme.size());
  const auto at = rest.substr(0, rest.find('/')).rfind('@');
  if (at == std::string_view::npos) return std::string(spec);
  const std::string_view userinfo = rest.substr(0, at);
  const auto colon = userinfo.find(':');
  if (colon == std::string_view::npos) return std::string(spec);
  std::string out(kScheme);
  out.append(userinfo.substr(0, colon)).append(":***").append(rest.substr(at));
  return out;
}

std::chrono::milliseconds whole_ms(Clock::duration d) {
  return std::chrono::ceil<std::chrono::milliseconds>(d);
}

}  // namespace

RedisSpec parse_redis_spec(std::string_view spec) {
  if (spec.substr(0, kScheme.size()) != kScheme) bad(spec, "expected redis://HOST:PORT/KEY");
  RedisSpec out;
  std::string_view rest = spec.substr(kScheme.size());
  const auto slash = rest.find('/');
  if (slash == std::string_view::npos) bad(spec, "no /KEY after the host");
  std::string_view authority = rest.substr(0, slash);
  std::string_view path = rest.substr(slash + 1);
  std::string_view query;
  if (const auto q = path.find('?'); q != std::string_view::npos) {
    query = path.substr(q + 1);
    path = path.substr(0, q);
  }
  if (const auto at = authority.rfind('@'); at != std::string_view::npos) {
    const std::string_view userinfo = authority.substr(0, at);
    authority = authority.substr(at + 1);
    const auto colon = userinfo.find(':');
    if (colon == std::string_view::npos) {
      bad(spec, "credentials must be USER:PASSWORD@ or :PASSWORD@");
    }
    out.server.user = decode(spec, "user", userinfo.substr(0, colon));
    out.server.password = decode(spec, "password", userinfo.substr(colon + 1));
    if (out.server.password.empty()) bad(spec, "empty password");
  }
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) bad(spec, "unterminated [IPv6 address]");
    out.server.host = std::string(authority.substr(1, close - 1));
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') bad(spec, "expected :PORT after the [IPv6 address]");
      port = after.substr(1);
      if (port.empty()) bad(spec, "empty port");
    }
  } else if (const auto colon = authority.find(':'); colon != std::string_view::npos) {
    out.server.host = std::string(authority.substr(0, colon));
    port = authority.substr(colon + 1);
    if (port.empty()) bad(spec, "empty port");
  } else {
    out.server.host = std::string(authority);
  }
  if (out.server.host.empty()) bad(spec, "no host");
  out.server.port =
      port.empty() ? 6379 : static_cast<int>(parse_number(spec, "port", port, 1, 65535));
  out.key = decode(spec, "key", path);
  if (out.key.empty()) bad(spec, "empty key");

  reject_repeated_options(spec, query);
  while (!query.empty()) {
    const auto amp = query.find('&');
    const std::string_view item = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (item.empty()) continue;
    const auto eq = item.find('=');
    const std::string_view k = item.substr(0, eq);
    const std::string_view v =
        eq == std::string_view::npos ? std::string_view() : item.substr(eq + 1);
    if (k == "ttl") {
      out.options.ttl = whole_ms(duration_option(spec, k, v));
      if (out.options.ttl.count() < 1) bad(spec, "ttl must be at least 1ms");
    } else if (k == "timeout") {
      out.options.timeout = duration_option(spec, k, v);
    } else if (k == "fail_when_locked") {
      out.options.fail_when_locked = parse_flag(spec, k, v);
    } else if (k == "fence") {
      out.options.fence = parse_flag(spec, k, v);
    } else if (k == "refresh") {
      out.options.auto_refresh = parse_flag(spec, k, v);
    } else if (k == "db") {
      out.server.db = static_cast<int>(parse_number(spec, "db", v, 0, 1 << 20));
    } else if (k == "connect_timeout") {
      out.server.connect_timeout = whole_ms(duration_option(spec, k, v));
    } else if (k == "command_timeout") {
      out.server.command_timeout = whole_ms(duration_option(spec, k, v));
    } else {
      bad(spec,
          "unknown option '" + std::string(k) + "' for redis; it takes " + std::string(kOptions));
    }
  }
  return out;
}

std::unique_ptr<Lockable> open_redis_lock(std::string_view spec) {
  RedisSpec s = parse_redis_spec(spec);
  return std::make_unique<RedisLease>(std::move(s.server), std::move(s.key), s.options);
}

void register_redis_schemes() {
  locksmith::register_lock_scheme("redis", &open_redis_lock);
  locksmith::register_lock_scheme("redlock", &open_redlock);
  locksmith::register_lock_scheme("redis+pubsub", &open_redis_pubsub_lock);
}

}  // namespace locksmith::redis
