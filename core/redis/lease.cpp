#include "locksmith/redis/lease.hpp"
#include "io_deadline.hpp"
#include "registry_internal.hpp"
#include "token.hpp"

#include <sys/random.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <utility>

namespace locksmith::redis {
namespace detail {

const char* const kTakeWithFenceLua = R"lua(
local took = redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2])
if not took and redis.call('get', KEYS[1]) == ARGV[1] then
  took = redis.call('pexpire', KEYS[1], ARGV[2])
end
if not took then
  return {0, redis.call('pttl', KEYS[1])}
end
local fence = redis.pcall('incr', KEYS[2])
if type(fence) == 'table' and fence.err then
  redis.call('del', KEYS[1])
  return fence
end
if fence == 1 then
  -- A new fence key: the first acquisition ever, or a server that lost its data (a restart
  -- without persistence, FLUSHALL). Go on from the server's clock in microseconds, which is past
  -- every fence handed out before (an acquisition takes far more than a microsecond).
  local now = redis.call('time')
  fence = tonumber(now[1]) * 1000000 + tonumber(now[2])
  redis.call('set', KEYS[2], string.format('%d', fence))
end
)lua";

const Script& force_release_script() {
  static const Script s(R"lua(
local n = redis.call('del', KEYS[1])
if #KEYS >= 4 then
  redis.pcall('del', KEYS[3])
  redis.pcall('srem', KEYS[4], ARGV[1])
end
redis.pcall('publish', KEYS[2], '')
return n
)lua");
  return s;
}

}  // namespace detail

namespace {

// detail::kTakeWithFenceLua, then {1, fence}.
const Script& acquire_script() {
  static const Script s(std::string(detail::kTakeWithFenceLua) + "return {1, fence}\n");
  return s;
}

// redis-py's LUA_RELEASE_SCRIPT, plus the PUBLISH that wakes waiters (by pcall: an ACL user without
// channel permissions must still release; its waiters then wake by PTTL and backstop only).
const Script& release_script() {
  static const Script s(R"lua(
local token = redis.call('get', KEYS[1])
if not token or token ~= ARGV[1] then
  return 0
end
redis.call('del', KEYS[1])
redis.pcall('publish', KEYS[2], '')
return 1
)lua");
  return s;
}

// redis-py's LUA_EXTEND_SCRIPT.
const Script& extend_script() {
  static const Script s(R"lua(
local token = redis.call('get', KEYS[1])
if not token or token ~= ARGV[1] then
  return 0
end
local expiration = redis.call('pttl', KEYS[1])
if not expiration then
  expiration = 0
end
if expiration < 0 then
  return 0
end
local newttl = ARGV[2]
if ARGV[3] == "0" then
  newttl = ARGV[2] + expiration
end
redis.call('pexpire', KEYS[1], newttl)
return 1
)lua");
  return s;
}

// redis-py's LUA_REACQUIRE_SCRIPT.
const Script& reacquire_script() {
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

// The PTTL of the key when it holds ARGV[1], else -3.
const Script& adopt_script() {
  static const Script s(R"lua(
if redis.call('get', KEYS[1]) ~= ARGV[1] then
  return -3
end
return redis.call('pttl', KEYS[1])
)lua");
  return s;
}

std::error_code unexpected(Connection& c, std::string& last_error, std::string_view what) {
  last_error = "redis " + c.endpoint() + ": unexpected reply to " + std::string(what);
  return make_error_code(errc::protocol_error);
}

}  // namespace

RedisLease::RedisLease(ConnectOptions server, std::string key, LeaseOptions options)
    : key_(std::move(key)),
      fence_key_(key_ + ":fence"),
      channel_(key_ + ":released"),
      options_(std::move(options)),
      ttl_ms_(std::to_string(options_.ttl.count() > 0 ? options_.ttl.count() : 1)),
      conn_(server),
      sub_(std::move(server)) {
  if (options_.ttl.count() <= 0) options_.ttl = std::chrono::milliseconds(1);
}

RedisLease::~RedisLease() {
  stop_refresher();
  if (held_) (void)RedisLease::release();
}

std::string RedisLease::target() const { return conn_.endpoint() + "/" + key_; }

std::string RedisLease::last_error() const {
  const std::lock_guard lk(mu_);
  return last_error_;
}

Clock::time_point RedisLease::default_deadline() const noexcept {
  return policy_deadline(options_.timeout, options_.fail_when_locked);
}

Clock::duration RedisLease::drift() const noexcept {
  return std::chrono::milliseconds(2) +
         std::chrono::duration_cast<Clock::duration>(options_.ttl) / 100;
}

void RedisLease::set_valid_until(Clock::time_point t) noexcept {
  valid_until_.store(t.time_since_epoch().count());
}

Clock::time_point RedisLease::valid_until() const noexcept {
  return Clock::time_point(Clock::duration(valid_until_.load()));
}

bool RedisLease::valid() const noexcept {
  return held_ && !lost_.load() && Clock::now() < valid_until();
}

std::error_code RedisLease::failed(const Result& r) {
  last_error_ = r.message();
  return r.error();
}

// After an attempt whose reply was lost: it may have taken the key. Keep the token for the next
// acquire, which then recognises a key left behind as ours. When the connection dropped, also
// delete what it may have taken, on a new connection (still within the attempt's deadline).
// Not when the server did not answer in time: the delete would wait as long again, and a server
// that resumes could run it before the attempt, which came on another connection.
void RedisLease::forget_attempt(const Result& r) {
  retry_token_ = token_;
  if (r.error() != std::errc::timed_out) {
    (void)conn_.eval(release_script(), {key_, channel_}, {token_});
  }
}

std::error_code RedisLease::attempt(bool& got, long long& pttl, bool want_pttl,
                                    Clock::time_point io) {
  const std::lock_guard lk(mu_);
  const detail::ScopedDeadline bounded(conn_, io);
  if (!options_.fence && options_.index_key.empty() && retry_token_.empty()) {
    return plain_attempt(got, pttl, want_pttl);
  }
  const Result r = options_.index_key.empty()
                       ? conn_.eval(acquire_script(), {key_, fence_key_}, {token_, ttl_ms_})
                       : registered_attempt();
  if (!r) {
    if (!conn_.connected()) forget_attempt(r);
    return failed(r);
  }
  const Reply& v = r.value();
  if (v.type != Reply::Type::array || v.elements.size() != 2 ||
      v.elements[0].type != Reply::Type::integer || v.elements[1].type != Reply::Type::integer) {
    return unexpected(conn_, last_error_, "the acquire script");
  }
  got = v.elements[0].integer == 1;
  if (got) {
    fence_ = static_cast<std::uint64_t>(v.elements[1].integer);
  } else {
    pttl = v.elements[1].integer;
  }
  return {};
}

// redis-py's acquire: SET NX PX, then (only when it did not take and the caller will wait) the
// holder's PTTL. An attempt that follows one whose reply was lost goes by the script instead,
// which recognises a key that already holds our token.
std::error_code RedisLease::plain_attempt(bool& got, long long& pttl, bool want_pttl) {
  const Result r = conn_.command({"SET", key_, token_, "NX", "PX", ttl_ms_});
  if (!r) {
    if (!conn_.connected()) forget_attempt(r);
    return failed(r);
  }
  got = r.value().type == Reply::Type::status;
  if (!got && !r.value().is_nil()) return unexpected(conn_, last_error_, "SET NX PX");
  if (got || !want_pttl) return {};
  const Result t = conn_.command({"PTTL", key_});
  if (!t) return failed(t);
  if (t.value().type != Reply::Type::integer) return unexpected(conn_, last_error_, "PTTL");
  pttl = t.value().integer;
  return {};
}

Result RedisLease::registered_attempt() {
  std::vector<std::string> args{token_, ttl_ms_, key_};
  args.reserve(3 + 2 * options_.info.size());
  for (const auto& [field, value] : options_.info) {
    args.push_back(field);
    args.push_back(value);
  }
  return conn_.eval_list(detail::registered_acquire_script(),
                         {key_, fence_key_, key_ + ":info", options_.index_key}, args);
}

std::error_code RedisLease::subscribe(Clock::time_point io) {
  const detail::ScopedDeadline bounded(sub_, io);
  if (const auto ec = sub_.send({"SUBSCRIBE", channel_})) {
    const std::lock_guard lk(mu_);
    last_error_ = sub_.last_error();
    return ec;
  }
  // The confirmation comes within the command timeout and the attempt's deadline.
  const auto limit = std::min(
      io, Clock::now() + std::chrono::ceil<Clock::duration>(sub_.options().command_timeout));
  for (;;) {
    const Result r = sub_.read_until(limit);
    if (!r) {
      const std::lock_guard lk(mu_);
      last_error_ = r.message().empty()
                        ? "redis " + sub_.endpoint() + " did not answer SUBSCRIBE in time"
                        : r.message();
      sub_.close();
      return r.error() == locksmith::errc::timeout ? std::make_error_code(std::errc::timed_out)
                                                   : r.error();
    }
    const Reply& v = r.value();
    if (v.type == Reply::Type::array && !v.elements.empty() && v.elements[0].str == "subscribe") {
      subscribed_ = true;
      return {};
    }
  }
}

void RedisLease::drain() {
  while (subscribed_) {
    const Result r = sub_.read_until(Clock::time_point{});
    if (!r) {
      if (r.error() != locksmith::errc::timeout) subscribed_ = false;  // reconnect next time
      return;
    }
  }
}

std::error_code RedisLease::wait_release(Clock::time_point until) {
  for (;;) {
    const Result r = sub_.read_until(until);
    if (!r) {
      if (r.error() == locksmith::errc::timeout) return {};
      subscribed_ = false;  // resubscribe (and reconnect) at the next wait
      return {};
    }
    const Reply& v = r.value();
    if (v.type == Reply::Type::array && !v.elements.empty() && v.elements[0].str == "message") {
      return {};
    }
  }
}

std::error_code RedisLease::acquire(LockMode mode, Clock::time_point deadline) noexcept {
  if (mode != LockMode::exclusive) return locksmith::make_error_code(locksmith::errc::unsupported);
  if (held_) return std::make_error_code(std::errc::resource_deadlock_would_occur);
  try {
    if (!retry_token_.empty()) {
      token_ = retry_token_;
    } else if (const auto ec = detail::new_token(token_)) {
      const std::lock_guard lk(mu_);
      last_error_ = "getrandom: " + ec.message();
      return ec;
    }
    const auto entry = Clock::now();
    bool first = true;
    for (;;) {
      drain();
      const auto start = Clock::now();
      const auto io = detail::io_deadline(deadline, entry);
      bool got = false;
      long long pttl = -2;
      if (const auto ec = attempt(got, pttl, deadline > start, io)) {
        token_.clear();
        return detail::with_context(ec, last_error());
      }
      if (got) {
        retry_token_.clear();
        held_ = true;
        lost_ = false;
        set_valid_until(start + options_.ttl - drift());
        if (options_.auto_refresh) start_refresher();
        return {};
      }
      const auto now = Clock::now();
      if (now >= deadline) {
        token_.clear();
        return locksmith::make_error_code(first && deadline <= entry ? locksmith::errc::busy
                                                                     : locksmith::errc::timeout);
      }
      first = false;
      if (!subscribed_ && !no_notify_) {
        // Subscribe, then retry at once: a release before the subscription took is not seen.
        if (const auto ec = subscribe(detail::io_deadline(deadline, entry))) {
          if (ec.category() != redis_category() || ec == errc::connection_closed ||
              ec == errc::protocol_error) {
            token_.clear();
            return detail::with_context(ec, last_error());
          }
          no_notify_ = true;  // refused (an ACL without channel permissions): wait without
        }
        continue;
      }
      if (pttl == -2) continue;  // gone between the SET and the PTTL
      Clock::time_point until = deadline;
      if (pttl >= 0) {
        until = std::min(until, now + std::chrono::milliseconds(pttl + 1));
      }
      if (options_.backstop) until = std::min(until, now + *options_.backstop);
      if (no_notify_) {
        std::this_thread::sleep_until(until);
      } else {
        (void)wait_release(until);
      }
    }
  } catch (const std::bad_alloc&) {
    token_.clear();
    return std::make_error_code(std::errc::not_enough_memory);
  }
}

std::error_code RedisLease::release() noexcept {
  if (!held_) return locksmith::make_error_code(locksmith::errc::not_locked);
  stop_refresher();
  held_ = false;
  fence_.reset();
  const std::string token = std::move(token_);
  token_.clear();
  set_valid_until(Clock::time_point{});
  if (lost_.load()) return locksmith::make_error_code(locksmith::errc::lock_lost);
  try {
    const std::lock_guard lk(mu_);
    const Result r =
        options_.index_key.empty()
            ? conn_.eval(release_script(), {key_, channel_}, {token})
            : conn_.eval_list(detail::registered_release_script(),
                              {key_, channel_, key_ + ":info", options_.index_key}, {token, key_});
    if (!r) return failed(r);
    if (r.value().type != Reply::Type::integer) {
      return unexpected(conn_, last_error_, "the release script");
    }
    if (r.value().integer != 1) {
      lost_ = true;
      return locksmith::make_error_code(locksmith::errc::lock_lost);
    }
    return {};
  } catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
  }
}

std::error_code RedisLease::extend(std::chrono::milliseconds additional, bool replace) noexcept {
  if (!held_) return locksmith::make_error_code(locksmith::errc::not_locked);
  if (lost_.load()) return locksmith::make_error_code(locksmith::errc::lock_lost);
  try {
    const std::lock_guard lk(mu_);
    const auto start = Clock::now();
    const Result r = conn_.eval(extend_script(), {key_},
                                {token_, std::to_string(additional.count()), replace ? "1" : "0"});
    if (!r) return failed(r);
    if (r.value().type != Reply::Type::integer) {
      return unexpected(conn_, last_error_, "the extend script");
    }
    if (r.value().integer != 1) {
      lost_ = true;
      return locksmith::make_error_code(locksmith::errc::lock_lost);
    }
    set_valid_until(replace ? start + additional - drift() : valid_until() + additional);
    return {};
  } catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
  }
}

std::error_code RedisLease::run_reacquire() {
  const auto start = Clock::now();
  const Result r = conn_.eval(reacquire_script(), {key_}, {token_, ttl_ms_});
  if (!r) return failed(r);
  if (r.value().type != Reply::Type::integer) {
    return unexpected(conn_, last_error_, "the reacquire script");
  }
  if (r.value().integer != 1) {
    lost_ = true;
    return locksmith::make_error_code(locksmith::errc::lock_lost);
  }
  set_valid_until(start + options_.ttl - drift());
  return {};
}

std::error_code RedisLease::reacquire() noexcept {
  if (!held_) return locksmith::make_error_code(locksmith::errc::not_locked);
  if (lost_.load()) return locksmith::make_error_code(locksmith::errc::lock_lost);
  try {
    const std::lock_guard lk(mu_);
    return run_reacquire();
  } catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
  }
}

std::error_code RedisLease::keep_alive() noexcept {
  if (!held_) return locksmith::make_error_code(locksmith::errc::not_locked);
  if (lost_.load()) return locksmith::make_error_code(locksmith::errc::lock_lost);
  try {
    const std::lock_guard lk(mu_);
    // Past the bound (a paused holder that resumed) the answer decides: a short wait for it.
    const auto bound = std::max(valid_until(), Clock::now() + std::chrono::milliseconds(20));
    const detail::ScopedDeadline within(conn_, bound);
    return run_reacquire();
  } catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
  }
}

std::error_code RedisLease::owned(bool& out) noexcept {
  out = false;
  if (!held_ || lost_.load()) return {};
  try {
    const std::lock_guard lk(mu_);
    const Result r = conn_.command({"GET", key_});
    if (!r) return failed(r);
    out = r.value().type == Reply::Type::string && r.value().str == token_;
    if (!out) lost_ = true;
    return {};
  } catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
  }
}

bool RedisLease::owned() noexcept {
  bool out = false;
  return !owned(out) && out;
}

std::error_code RedisLease::adopt(std::string token) noexcept {
  if (held_) return std::make_error_code(std::errc::resource_deadlock_would_occur);
  try {
    long long pttl = -3;
    const auto start = Clock::now();
    {
      const std::lock_guard lk(mu_);
      const Result r = conn_.eval(adopt_script(), {key_}, {token});
      if (!r) return failed(r);
      if (r.value().type != Reply::Type::integer) {
        return unexpected(conn_, last_error_, "the adopt script");
      }
      pttl = r.value().integer;
    }
    if (pttl == -3 || pttl == -2) return locksmith::make_error_code(locksmith::errc::not_locked);
    token_ = std::move(token);
    fence_.reset();
    held_ = true;
    lost_ = false;
    set_valid_until(pttl < 0 ? kForever : start + std::chrono::milliseconds(pttl) - drift());
    if (options_.auto_refresh) start_refresher();
    return {};
  } catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
  }
}

std::error_code RedisLease::force_release() noexcept {
  stop_refresher();
  held_ = false;
  token_.clear();
  fence_.reset();
  set_valid_until(Clock::time_point{});
  try {
    const std::lock_guard lk(mu_);
    const Result r = options_.index_key.empty()
                         ? conn_.eval(detail::force_release_script(), {key_, channel_}, {})
                         : conn_.eval(detail::force_release_script(),
                                      {key_, channel_, key_ + ":info", options_.index_key}, {key_});
    if (!r) return failed(r);
    return {};
  } catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
  }
}

void RedisLease::detach() noexcept {
  stop_refresher();
  held_ = false;
  token_.clear();
  fence_.reset();
  set_valid_until(Clock::time_point{});
}

LockInfo RedisLease::describe() const {
  LockInfo info;
  info.kind = "redis";
  info.mechanism = "redis-lease";
  info.target = target();
  info.held = held_;
  if (held_) {
    info.mode = LockMode::exclusive;
    info.token = token_;
    info.fence = fence_;
  }
  return info;
}

void RedisLease::start_refresher() {
  stop_refresher();
  {
    const std::lock_guard lk(mu_);
    stop_ = false;
  }
  refresher_ = std::thread([this] { refresh_loop(); });
}

void RedisLease::stop_refresher() noexcept {
  if (!refresher_.joinable()) return;
  {
    const std::lock_guard lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  refresher_.join();
}

void RedisLease::refresh_loop() {
  const auto period = std::chrono::duration_cast<Clock::duration>(options_.ttl) / 3;
  const auto retry = std::max<Clock::duration>(period / 4, std::chrono::milliseconds(1));
  std::unique_lock lk(mu_);
  auto next = Clock::now() + period;
  while (!stop_) {
    if (cv_.wait_until(lk, next, [this] { return stop_; })) break;
    const auto start = Clock::now();
    std::error_code ec;
    try {
      ec = run_reacquire();
    } catch (const std::bad_alloc&) {
      ec = std::make_error_code(std::errc::not_enough_memory);
    }
    if (!ec) {
      next = start + period;
    } else if (ec == locksmith::errc::lock_lost) {
      break;  // lost_ is set
    } else {
      next = Clock::now() + retry;  // a connection error: try again soon, within the ttl
    }
  }
}

}  // namespace locksmith::redis
