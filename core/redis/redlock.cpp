#include "locksmith/redis/redlock.hpp"
#include "io_deadline.hpp"
#include "spec_util.hpp"
#include "token.hpp"

#include <sys/random.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <thread>
#include <utility>

#include "locksmith/error.hpp"
#include "locksmith/spec.hpp"

namespace locksmith::redis {
namespace {

// redis-py's LUA_RELEASE_SCRIPT (RedisLease's release without its PUBLISH: Redlock waiters retry
// on a timer, and a plain redis-py peer publishes nothing either).
const Script& release_script() {
  static const Script s(R"lua(
local token = redis.call('get', KEYS[1])
if not token or token ~= ARGV[1] then
  return 0
end
redis.call('del', KEYS[1])
return 1
)lua");
  return s;
}

// redis-py's LUA_REACQUIRE_SCRIPT: PEXPIRE only while the key holds our token.
const Script& extend_script() {
  static const Script s(R"lua(
local token = redis.call('get', KEYS[1])
if not token or token ~= ARGV[1] then
  return 0
end
redis.call('pexpire', KEYS[1], ARGV[2])
return 1
)lua");
  return s;
}

std::string join_endpoints(const std::vector<Connection>& masters) {
  std::string out;
  for (const auto& m : masters) {
    if (!out.empty()) out += ',';
    out += m.endpoint();
  }
  return out;
}

}  // namespace

Redlock::Redlock(std::vector<ConnectOptions> masters, std::string key, RedlockOptions options)
    : key_(std::move(key)), options_(options) {
  if (options_.ttl.count() <= 0) options_.ttl = std::chrono::milliseconds(1);
  ttl_ms_ = std::to_string(options_.ttl.count());
  masters_.reserve(masters.size());
  for (auto& m : masters) {
    if (options_.master_timeout.count() > 0) {
      m.connect_timeout = options_.master_timeout;
      m.command_timeout = options_.master_timeout;
    }
    masters_.emplace_back(std::move(m));
  }
}

Redlock::~Redlock() {
  if (held_) (void)Redlock::release();
}

std::string Redlock::target() const { return join_endpoints(masters_) + "/" + key_; }

Clock::time_point Redlock::default_deadline() const noexcept {
  return policy_deadline(options_.timeout, options_.fail_when_locked);
}

Clock::duration Redlock::drift(std::chrono::milliseconds ttl) const noexcept {
  return std::chrono::milliseconds(2) + std::chrono::duration_cast<Clock::duration>(ttl) / 100;
}

Clock::duration Redlock::validity() const noexcept {
  if (!held_ || lost_) return Clock::duration::zero();
  const auto left = valid_until_ - Clock::now();
  return left > Clock::duration::zero() ? left : Clock::duration::zero();
}

Clock::duration Redlock::retry_pause() {
  if (!rng_) {
    std::uint64_t seed = 0;
    std::array<unsigned char, sizeof seed> bytes{};
    if (!detail::random_bytes(bytes.data(), bytes.size())) {
      for (const unsigned char b : bytes) seed = (seed << 8) | b;
    } else {
      seed = static_cast<std::uint64_t>(Clock::now().time_since_epoch().count());
    }
    rng_.emplace(seed);
  }
  const auto mean = std::chrono::duration_cast<Clock::duration>(options_.retry_delay);
  if (mean.count() <= 0) return Clock::duration::zero();
  std::uniform_int_distribution<Clock::rep> pick(mean.count() / 2, mean.count() * 3 / 2);
  return Clock::duration(pick(*rng_));
}

void Redlock::run_all(const Script& script, std::initializer_list<std::string_view> args,
                      std::size_t& ones, std::size_t& answered, std::error_code& first_error,
                      std::string& unreachable) {
  ones = 0;
  answered = 0;
  for (auto& m : masters_) {
    const Result r = m.eval(script, {key_}, args);
    if (!r) {
      if (!first_error) first_error = r.error();
      if (!unreachable.empty()) unreachable += "; ";
      unreachable += r.message();
      continue;
    }
    ++answered;
    if (r.value().type == Reply::Type::integer && r.value().integer == 1) ++ones;
  }
}

void Redlock::unlock_all(const std::string& token) {
  std::size_t ones = 0;
  std::size_t answered = 0;
  std::error_code ec;
  std::string unreachable;
  run_all(release_script(), {token}, ones, answered, ec, unreachable);
}

std::error_code Redlock::acquire(LockMode mode, Clock::time_point deadline) noexcept {
  if (mode != LockMode::exclusive) return locksmith::make_error_code(locksmith::errc::unsupported);
  if (held_) return std::make_error_code(std::errc::resource_deadlock_would_occur);
  if (masters_.empty()) return locksmith::make_error_code(locksmith::errc::invalid_spec);
  try {
    if (const auto ec = detail::new_token(token_)) {
      last_error_ = "getrandom: " + ec.message();
      return ec;
    }
    const auto entry = Clock::now();
    // Every master's connects and round trips end by the deadline (see io_deadline()), each
    // still capped by master_timeout; the deadlines come off when acquire returns.
    const auto bound = [&] {
      const auto io = detail::io_deadline(deadline, entry);
      for (auto& m : masters_) m.set_deadline(io);
    };
    struct Unbound {
      std::vector<Connection>& masters;
      ~Unbound() {
        for (auto& m : masters) m.set_deadline(Connection::kNoDeadline);
      }
    } unbound{masters_};
    bool first = true;
    for (;;) {
      bound();
      const auto start = Clock::now();
      std::size_t taken = 0;
      std::size_t answered = 0;
      std::error_code first_error;
      std::string unreachable;
      for (auto& m : masters_) {
        const Result r = m.command({"SET", key_, token_, "NX", "PX", ttl_ms_});
        if (!r) {
          if (!first_error) first_error = r.error();
          if (!unreachable.empty()) unreachable += "; ";
          unreachable += r.message();
          continue;
        }
        ++answered;
        if (r.value().type == Reply::Type::status && r.value().str == "OK") ++taken;
      }
      const auto validity = options_.ttl - (Clock::now() - start) - drift(options_.ttl);
      if (taken >= quorum() && validity > Clock::duration::zero()) {
        held_ = true;
        lost_ = false;
        extensions_ = 0;
        acquired_on_ = taken;
        valid_until_ = start + options_.ttl - drift(options_.ttl);
        return {};
      }
      // Delete on all masters, including those that failed: a SET whose reply was lost may
      // have taken the key. (At the deadline, this still gets the grace of a last attempt.)
      bound();
      unlock_all(token_);
      if (answered < quorum()) {
        // Not contention: too few masters said anything at all.
        last_error_ = "redlock " + target() + ": only " + std::to_string(answered) + " of " +
                      std::to_string(masters_.size()) + " masters reachable (quorum " +
                      std::to_string(quorum()) + "): " + unreachable;
        token_.clear();
        return first_error ? detail::with_context(first_error, last_error_)
                           : make_error_code(errc::connect_failed);
      }
      const auto now = Clock::now();
      if (now >= deadline) {
        last_error_ = "redlock " + target() + ": took the key on " + std::to_string(taken) +
                      " of " + std::to_string(masters_.size()) + " masters (quorum " +
                      std::to_string(quorum()) + ")";
        if (!unreachable.empty()) last_error_ += "; unreachable: " + unreachable;
        token_.clear();
        return locksmith::make_error_code(first && deadline <= entry ? locksmith::errc::busy
                                                                     : locksmith::errc::timeout);
      }
      first = false;
      std::this_thread::sleep_until(std::min(deadline, now + retry_pause()));
    }
  } catch (const std::bad_alloc&) {
    token_.clear();
    return std::make_error_code(std::errc::not_enough_memory);
  }
}

std::error_code Redlock::release() noexcept {
  if (!held_) return locksmith::make_error_code(locksmith::errc::not_locked);
  held_ = false;
  acquired_on_ = 0;
  valid_until_ = Clock::time_point{};
  const std::string token = std::move(token_);
  token_.clear();
  const bool was_lost = lost_;
  lost_ = false;
  try {
    std::size_t deleted = 0;
    std::size_t answered = 0;
    std::error_code first_error;
    std::string unreachable;
    run_all(release_script(), {token}, deleted, answered, first_error, unreachable);
    if (deleted >= quorum() && !was_lost) return {};
    if (answered < quorum()) {
      last_error_ = "redlock " + target() + ": release reached only " + std::to_string(answered) +
                    " of " + std::to_string(masters_.size()) + " masters: " + unreachable;
      return first_error ? first_error : make_error_code(errc::connect_failed);
    }
    last_error_ = "redlock " + target() + ": only " + std::to_string(deleted) + " of " +
                  std::to_string(masters_.size()) + " masters still held our token";
    return locksmith::make_error_code(locksmith::errc::lock_lost);
  } catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
  }
}

std::error_code Redlock::extend(std::chrono::milliseconds ttl) noexcept {
  return extend_by(ttl, true);
}

std::error_code Redlock::extend_by(std::chrono::milliseconds ttl, bool counted) noexcept {
  if (!held_) return locksmith::make_error_code(locksmith::errc::not_locked);
  if (lost_) return locksmith::make_error_code(locksmith::errc::lock_lost);
  try {
    if (counted && extensions_ >= options_.max_extensions) {
      last_error_ = "redlock " + target() + ": extended " + std::to_string(extensions_) +
                    " times already (max_extensions)";
      return std::make_error_code(std::errc::operation_not_permitted);
    }
    if (ttl.count() <= 0) return std::make_error_code(std::errc::invalid_argument);
    const auto start = Clock::now();
    std::size_t extended = 0;
    std::size_t answered = 0;
    std::error_code first_error;
    std::string unreachable;
    run_all(extend_script(), {token_, std::to_string(ttl.count())}, extended, answered, first_error,
            unreachable);
    const auto until = start + ttl - drift(ttl);
    if (extended >= quorum() && until > Clock::now()) {
      if (counted) ++extensions_;
      valid_until_ = until;
      return {};
    }
    if (answered < quorum()) {
      // Unknown: the old validity still stands.
      last_error_ = "redlock " + target() + ": extend reached only " + std::to_string(answered) +
                    " of " + std::to_string(masters_.size()) + " masters: " + unreachable;
      return first_error ? first_error : make_error_code(errc::connect_failed);
    }
    last_error_ = "redlock " + target() + ": only " + std::to_string(extended) + " of " +
                  std::to_string(masters_.size()) + " masters still held our token";
    lost_ = true;
    return locksmith::make_error_code(locksmith::errc::lock_lost);
  } catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
  }
}

LockInfo Redlock::describe() const {
  LockInfo info;
  info.kind = "redlock";
  info.mechanism = "redlock";
  info.target = target();
  info.held = held_;
  if (held_) {
    info.mode = LockMode::exclusive;
    info.token = token_;
  }
  return info;
}

// ---- redlock:// specs ----------------------------------------------------------------------

namespace {

constexpr std::string_view kRedlockScheme = "redlock://";
constexpr std::string_view kRedlockOptions =
    "ttl, timeout, fail_when_locked, retry_delay, max_extensions, master_timeout, db";

std::chrono::milliseconds ms_option(std::string_view spec, std::string_view key,
                                    std::string_view value) {
  return std::chrono::ceil<std::chrono::milliseconds>(detail::duration_option(spec, key, value));
}

using detail::bad;
using detail::parse_flag;
using detail::parse_number;

ConnectOptions parse_master(std::string_view spec, std::string_view text) {
  ConnectOptions m;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos) bad(spec, "unterminated [IPv6 address]");
    m.host = std::string(text.substr(1, close - 1));
    const std::string_view after = text.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') bad(spec, "expected :PORT after the [IPv6 address]");
      port = after.substr(1);
      if (port.empty()) bad(spec, "empty port");
    }
  } else if (const auto colon = text.find(':'); colon != std::string_view::npos) {
    m.host = std::string(text.substr(0, colon));
    port = text.substr(colon + 1);
    if (port.empty()) bad(spec, "empty port");
  } else {
    m.host = std::string(text);
  }
  if (m.host.empty()) bad(spec, "empty host in the master list");
  m.port = port.empty() ? 6379 : static_cast<int>(parse_number(spec, "port", port, 1, 65535));
  return m;
}

}  // namespace

RedlockSpec parse_redlock_spec(std::string_view spec) {
  if (spec.substr(0, kRedlockScheme.size()) != kRedlockScheme) {
    bad(spec, "expected redlock://H1:P1,H2:P2,H3:P3/KEY");
  }
  RedlockSpec out;
  std::string_view rest = spec.substr(kRedlockScheme.size());
  const auto slash = rest.find('/');
  if (slash == std::string_view::npos) bad(spec, "no /KEY after the masters");
  std::string_view hosts = rest.substr(0, slash);
  std::string_view path = rest.substr(slash + 1);
  std::string_view query;
  if (const auto q = path.find('?'); q != std::string_view::npos) {
    query = path.substr(q + 1);
    path = path.substr(0, q);
  }
  if (hosts.find('@') != std::string_view::npos) {
    bad(spec, "credentials are not supported in redlock specs");
  }
  if (hosts.empty()) bad(spec, "no masters");
  for (;;) {
    const auto comma = hosts.find(',');
    out.masters.push_back(parse_master(spec, hosts.substr(0, comma)));
    if (comma == std::string_view::npos) break;
    hosts = hosts.substr(comma + 1);
  }
  for (std::size_t i = 0; i < out.masters.size(); ++i) {
    for (std::size_t j = 0; j < i; ++j) {
      if (out.masters[i].host == out.masters[j].host &&
          out.masters[i].port == out.masters[j].port) {
        bad(spec, "master " + out.masters[i].host + ":" + std::to_string(out.masters[i].port) +
                      " is listed twice");
      }
    }
  }
  out.key = detail::decode(spec, "key", path);
  if (out.key.empty()) bad(spec, "empty key");

  detail::reject_repeated_options(spec, query);
  int db = 0;
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
      out.options.ttl = ms_option(spec, k, v);
      if (out.options.ttl.count() < 1) bad(spec, "ttl must be at least 1ms");
    } else if (k == "timeout") {
      out.options.timeout = ms_option(spec, k, v);
    } else if (k == "fail_when_locked") {
      out.options.fail_when_locked = parse_flag(spec, k, v);
    } else if (k == "retry_delay") {
      out.options.retry_delay = ms_option(spec, k, v);
    } else if (k == "max_extensions") {
      out.options.max_extensions = static_cast<unsigned>(parse_number(spec, k, v, 0, 1000000));
    } else if (k == "master_timeout") {
      out.options.master_timeout = ms_option(spec, k, v);
      if (out.options.master_timeout.count() < 1) bad(spec, "master_timeout must be at least 1ms");
    } else if (k == "db") {
      db = static_cast<int>(parse_number(spec, "db", v, 0, 1 << 20));
    } else {
      bad(spec, "unknown option '" + std::string(k) + "' for redlock; it takes " +
                    std::string(kRedlockOptions));
    }
  }
  for (auto& m : out.masters) m.db = db;
  return out;
}

std::unique_ptr<Lockable> open_redlock(std::string_view spec) {
  RedlockSpec s = parse_redlock_spec(spec);
  return std::make_unique<Redlock>(std::move(s.masters), std::move(s.key), s.options);
}

}  // namespace locksmith::redis
