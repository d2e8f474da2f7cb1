#include "locksmith/redis/pubsub_lock.hpp"
#include "token.hpp"

#include <sys/random.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <utility>
#include <vector>

#include "locksmith/error.hpp"
#include "locksmith/redis/spec.hpp"
#include "locksmith/spec.hpp"

namespace locksmith::redis {
namespace {

// A JSON string literal (what Python's json.dumps writes for ASCII; other bytes pass through).
std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (const char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          std::array<char, 8> buf{};
          std::snprintf(buf.data(), buf.size(), "\\u%04x", static_cast<unsigned>(c));
          out += buf.data();
        } else {
          out.push_back(c);
        }
    }
  }
  out.push_back('"');
  return out;
}

void append_utf8(std::string& out, unsigned cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xc0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xe0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else {
    out.push_back(static_cast<char>(0xf0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  }
}

bool hex4(std::string_view s, std::size_t at, unsigned& out) {
  if (at + 4 > s.size()) return false;
  out = 0;
  for (std::size_t i = at; i < at + 4; ++i) {
    const char c = s[i];
    out <<= 4;
    if (c >= '0' && c <= '9') {
      out |= static_cast<unsigned>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      out |= static_cast<unsigned>(c - 'a' + 10);
    } else if (c >= 'A' && c <= 'F') {
      out |= static_cast<unsigned>(c - 'A' + 10);
    } else {
      return false;
    }
  }
  return true;
}

// Parses the JSON string literal at s[pos] (a '"'); nullopt when malformed.
std::optional<std::string> json_string_at(std::string_view s, std::size_t pos) {
  if (pos >= s.size() || s[pos] != '"') return std::nullopt;
  std::string out;
  for (std::size_t i = pos + 1; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '"') return out;
    if (c != '\\') {
      out.push_back(c);
      continue;
    }
    if (++i >= s.size()) return std::nullopt;
    switch (s[i]) {
      case '"':
        out.push_back('"');
        break;
      case '\\':
        out.push_back('\\');
        break;
      case '/':
        out.push_back('/');
        break;
      case 'b':
        out.push_back('\b');
        break;
      case 'f':
        out.push_back('\f');
        break;
      case 'n':
        out.push_back('\n');
        break;
      case 'r':
        out.push_back('\r');
        break;
      case 't':
        out.push_back('\t');
        break;
      case 'u': {
        unsigned cp = 0;
        if (!hex4(s, i + 1, cp)) return std::nullopt;
        i += 4;
        unsigned lo = 0;
        if (cp >= 0xd800 && cp < 0xdc00 && i + 2 < s.size() && s[i + 1] == '\\' &&
            s[i + 2] == 'u' && hex4(s, i + 3, lo) && lo >= 0xdc00 && lo < 0xe000) {
          cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
          i += 6;
        }
        append_utf8(out, cp);
        break;
      }
      default:
        return std::nullopt;
    }
  }
  return std::nullopt;
}

// The "response_channel" member of a ping (a JSON object), as portalocker's holder reads it.
std::optional<std::string> response_channel_of(std::string_view json) {
  static constexpr std::string_view kKey = "\"response_channel\"";
  const auto k = json.find(kKey);
  if (k == std::string_view::npos) return std::nullopt;
  std::size_t i = k + kKey.size();
  auto skip_ws = [&] {
    while (i < json.size() &&
           (json[i] == ' ' || json[i] == '\t' || json[i] == '\n' || json[i] == '\r')) {
      ++i;
    }
  };
  skip_ws();
  if (i >= json.size() || json[i] != ':') return std::nullopt;
  ++i;
  skip_ws();
  return json_string_at(json, i);
}

// str(time.time()) as Python prints it, near enough: seconds since the epoch with microseconds.
std::string python_time_now() {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
  std::array<char, 48> buf{};
  std::snprintf(buf.data(), buf.size(), "%lld.%06lld", static_cast<long long>(us / 1000000),
                static_cast<long long>(us % 1000000));
  return buf.data();
}

bool is_push(const Reply& r, std::string_view kind) {
  return r.type == Reply::Type::array && !r.elements.empty() && r.elements[0].str == kind;
}

std::error_code protocol(std::string& last_error, const Connection& c, std::string_view what) {
  last_error = "redis " + c.endpoint() + ": unexpected reply to " + std::string(what);
  return make_error_code(errc::protocol_error);
}

Clock::time_point after(Clock::duration d) { return Lockable::deadline_after(d); }

}  // namespace

RedisLock::RedisLock(ConnectOptions server, std::string channel, PubSubOptions options)
    : channel_(std::move(channel)),
      client_name_(channel_ + "-lock"),
      options_(options),
      conn_(server),
      sub_(server),
      probe_(std::move(server)) {
  if (detail::random_bytes(&jitter_state_, sizeof jitter_state_))
    jitter_state_ = 0x9e3779b97f4a7c15ULL;
  jitter_state_ |= 1;
}

RedisLock::~RedisLock() {
  if (held_) (void)RedisLock::release();
}

std::string RedisLock::target() const { return conn_.endpoint() + "/" + channel_; }

std::string RedisLock::last_error() const {
  const std::lock_guard lk(mu_);
  return last_error_;
}

void RedisLock::set_error(std::string message) {
  const std::lock_guard lk(mu_);
  last_error_ = std::move(message);
}

Clock::time_point RedisLock::default_deadline() const noexcept {
  return policy_deadline(options_.timeout, options_.fail_when_locked);
}

LockInfo RedisLock::describe() const {
  LockInfo info;
  info.kind = "redis+pubsub";
  info.mechanism = "redis-pubsub";
  info.target = target();
  info.held = owned();
  if (info.held) info.mode = LockMode::exclusive;
  return info;
}

std::error_code RedisLock::numsub(long long& out) {
  const std::lock_guard lk(mu_);
  Result r = conn_.command({"PUBSUB", "NUMSUB", channel_});
  if (!r && !conn_.connected()) {
    // An idle connection dropped meanwhile (server timeout, CLIENT KILL): NUMSUB is safe to
    // repeat, and Connection reconnects once.
    r = conn_.command({"PUBSUB", "NUMSUB", channel_});
  }
  if (!r) {
    last_error_ = r.message();
    return r.error();
  }
  const Reply& v = r.value();
  if (v.type != Reply::Type::array || v.elements.size() != 2 ||
      v.elements[1].type != Reply::Type::integer) {
    return protocol(last_error_, conn_, "PUBSUB NUMSUB");
  }
  out = v.elements[1].integer;
  return {};
}

// portalocker's check_or_kill_lock without the kill: alive when any subscriber answers the ping
// in time; `nobody` when the PUBLISH reached no subscriber at all.
std::error_code RedisLock::probe(bool& alive, bool& nobody) {
  alive = false;
  nobody = false;
  std::string rnd;
  if (const auto ec = detail::new_token(rnd)) {
    set_error("getrandom: " + ec.message());
    return ec;
  }
  const std::string rc = channel_ + "-" + rnd;
  const auto io_deadline = [&] { return after(probe_.options().command_timeout); };
  if (const auto ec = probe_.send({"SUBSCRIBE", rc})) {
    set_error(probe_.last_error());
    return ec;
  }
  for (;;) {
    Result r = probe_.read_until(io_deadline());
    if (!r) {
      probe_.close();
      set_error(r.message().empty() ? "redis " + probe_.endpoint() + ": SUBSCRIBE timed out"
                                    : r.message());
      return r.error();
    }
    if (is_push(r.value(), "subscribe")) break;
  }
  const std::string ping = "{\"response_channel\": " + json_string(rc) + ", \"message\": \"ping\"}";
  long long receivers = 0;
  {
    const std::lock_guard lk(mu_);
    const Result r = conn_.command({"PUBLISH", channel_, ping});
    if (!r) {
      last_error_ = r.message();
      probe_.close();
      return r.error();
    }
    receivers = r.value().integer;
  }
  if (receivers == 0) {
    nobody = true;
  } else {
    const auto until = after(options_.unavailable_timeout);
    for (;;) {
      Result r = probe_.read_until(until);
      if (!r) {
        if (r.error() == locksmith::errc::timeout) break;
        probe_.close();
        set_error(r.message());
        return r.error();
      }
      if (is_push(r.value(), "message")) {
        alive = true;
        break;
      }
    }
  }
  // Leave the response channel; a connection that fails here is simply closed.
  if (probe_.send({"UNSUBSCRIBE", rc})) return {};
  for (;;) {
    Result r = probe_.read_until(io_deadline());
    if (!r) {
      probe_.close();
      return {};
    }
    if (is_push(r.value(), "unsubscribe")) return {};
  }
}

// portalocker's reaping: CLIENT KILL every pubsub client named "<channel>-lock".
std::error_code RedisLock::reap() {
  const std::lock_guard lk(mu_);
  const Result r = conn_.command({"CLIENT", "LIST", "TYPE", "pubsub"});
  if (!r) {
    last_error_ = r.message();
    return r.error();
  }
  const std::string& list = r.value().str;
  std::size_t pos = 0;
  const std::string name_field = "name=" + client_name_ + " ";
  while (pos < list.size()) {
    auto nl = list.find('\n', pos);
    if (nl == std::string::npos) nl = list.size();
    const std::string line = list.substr(pos, nl - pos) + " ";
    pos = nl + 1;
    if (line.find(" " + name_field) == std::string::npos) continue;
    if (line.rfind("id=", 0) != 0) continue;
    const std::string id = line.substr(3, line.find(' ') - 3);
    const Result k = conn_.command({"CLIENT", "KILL", "ID", id});
    if (k && k.value().integer > 0) ++reaped_;
  }
  return {};
}

std::error_code RedisLock::try_subscribe(bool& got) {
  got = false;
  std::string rnd;
  if (const auto ec = detail::new_token(rnd)) {
    set_error("getrandom: " + ec.message());
    return ec;
  }
  release_channel_ = client_name_ + "-release-" + rnd;
  // The connection of the previous hold is reused when its UNSUBSCRIBE was confirmed; SETNAME is
  // sent every time, so a connection that Connection re-opened gets the name too.
  const bool reused = sub_.connected();
  if (!reused) {
    if (const auto ec = sub_.connect()) {
      set_error(sub_.last_error());
      return ec;
    }
  }
  Result named = sub_.command({"CLIENT", "SETNAME", client_name_});
  if (!named && reused && !sub_.connected()) {
    // The idle connection was dropped meanwhile (a server timeout, a reaper): one fresh try.
    named = sub_.command({"CLIENT", "SETNAME", client_name_});
  }
  if (!named) {
    sub_.close();
    set_error(named.message());
    return named.error();
  }
  if (const auto ec = sub_.send({"SUBSCRIBE", channel_, release_channel_})) {
    set_error(sub_.last_error());
    return ec;
  }
  int confirmed = 0;
  const auto io_deadline = after(sub_.options().command_timeout);
  while (confirmed < 2) {
    Result r = sub_.read_until(io_deadline);
    if (!r) {
      sub_.close();
      set_error(r.message().empty() ? "redis " + sub_.endpoint() + ": SUBSCRIBE timed out"
                                    : r.message());
      return r.error();
    }
    const Reply& v = r.value();
    if (is_push(v, "subscribe")) {
      ++confirmed;
    } else if (is_push(v, "message") && v.elements.size() == 3 && v.elements[1].str == channel_) {
      answer(v.elements[2].str);  // a contender's ping between the two confirmations
    }
  }
  long long n = 0;
  if (const auto ec = numsub(n)) {
    sub_.close();
    return ec;
  }
  if (n != 1) {
    (void)unsubscribe_all();  // a race with another subscriber: both back off
    return {};
  }
  lost_ = false;
  held_ = true;
  try {
    thread_ = std::thread([this] { holder_loop(); });
  } catch (const std::system_error& e) {
    held_ = false;
    sub_.close();
    set_error(std::string("cannot start the holder thread: ") + e.what());
    return e.code();
  }
  got = true;
  return {};
}

// UNSUBSCRIBE from everything and wait for the server's confirmation, so the channel is free when
// this returns; on any failure the connection is closed, which drops the subscriptions too.
std::error_code RedisLock::unsubscribe_all() noexcept {
  try {
    if (const auto ec = sub_.send({"UNSUBSCRIBE"})) {
      sub_.close();
      return ec;
    }
    const auto io_deadline = after(sub_.options().command_timeout);
    for (;;) {
      Result r = sub_.read_until(io_deadline);
      if (!r) {
        sub_.close();
        set_error(r.message().empty() ? "redis " + sub_.endpoint() + ": UNSUBSCRIBE timed out"
                                      : r.message());
        return r.error() ? r.error() : make_error_code(errc::protocol_error);
      }
      const Reply& v = r.value();
      if (is_push(v, "unsubscribe") && v.elements.size() == 3 &&
          v.elements[2].type == Reply::Type::integer && v.elements[2].integer == 0) {
        return {};
      }
      if (is_push(v, "message") && v.elements.size() == 3 && v.elements[1].str == channel_) {
        answer(v.elements[2].str);  // still ours until the server confirms
      }
    }
  } catch (...) {
    sub_.close();
    return std::make_error_code(std::errc::not_enough_memory);
  }
}

// portalocker's channel_handler: PUBLISH str(time.time()) on the ping's response_channel.
void RedisLock::answer(const std::string& data) noexcept {
  try {
    const auto rc = response_channel_of(data);
    if (!rc) return;  // not a ping (portalocker's holder would crash; we ignore it)
    const std::lock_guard lk(mu_);
    const Result r = conn_.command({"PUBLISH", *rc, python_time_now()});
    if (!r) {
      last_error_ = r.message();
    } else {
      pings_answered_.fetch_add(1);
    }
  } catch (...) {
    // Out of memory: the pinger reaps us, and the next read notices the killed connection.
  }
}

void RedisLock::holder_loop() noexcept {
  try {
    auto last_seen = Clock::now();
    bool health_pending = false;
    auto health_deadline = Clock::time_point::max();
    for (;;) {
      const auto until =
          health_pending ? health_deadline : last_seen + options_.health_check_interval;
      Result r = sub_.read_until(until);
      if (!r) {
        if (r.error() == locksmith::errc::timeout && !health_pending) {
          if (sub_.send({"PING"})) {
            set_error(sub_.last_error());
            break;
          }
          health_pending = true;
          health_deadline = after(sub_.options().command_timeout);
          continue;
        }
        set_error(r.error() == locksmith::errc::timeout
                      ? "redis " + sub_.endpoint() + ": no answer to the health-check PING"
                      : r.message());
        break;
      }
      last_seen = Clock::now();
      health_pending = false;
      const Reply& v = r.value();
      if (is_push(v, "message") && v.elements.size() == 3) {
        if (v.elements[1].str == release_channel_) return;  // release(): still subscribed
        if (v.elements[1].str == channel_) answer(v.elements[2].str);
      }
      // "pong" answers and anything else only prove the connection alive.
    }
  } catch (...) {
    set_error("redis " + sub_.endpoint() + ": out of memory in the holder thread");
  }
  // Lost: never re-subscribe; close so that a half-dead subscription is dropped by the server.
  sub_.close();
  lost_ = true;
}

std::error_code RedisLock::acquire(LockMode mode, Clock::time_point deadline) noexcept {
  if (mode != LockMode::exclusive) return locksmith::make_error_code(locksmith::errc::unsupported);
  if (held_) return std::make_error_code(std::errc::resource_deadlock_would_occur);
  try {
    const auto entry = Clock::now();
    bool first = true;
    auto backoff = std::chrono::milliseconds(1);
    auto next_probe = Clock::time_point::min();
    for (;;) {
      long long n = 0;
      if (const auto ec = numsub(n)) return ec;
      bool try_sub = n == 0;
      if (n > 0 && Clock::now() >= next_probe) {
        bool alive = false;
        bool nobody = false;
        if (const auto ec = probe(alive, nobody)) return ec;
        next_probe = after(options_.probe_interval);
        if (!alive) {
          if (!nobody) {
            if (const auto ec = reap()) return ec;
          }
          try_sub = true;
        }
      }
      if (try_sub) {
        bool got = false;
        if (const auto ec = try_subscribe(got)) return ec;
        if (got) return {};
      }
      const auto now = Clock::now();
      if (now >= deadline) {
        return locksmith::make_error_code(first && deadline <= entry ? locksmith::errc::busy
                                                                     : locksmith::errc::timeout);
      }
      first = false;
      // Exponential backoff with jitter (xorshift), so two racing subscribers separate.
      jitter_state_ ^= jitter_state_ << 13;
      jitter_state_ ^= jitter_state_ >> 7;
      jitter_state_ ^= jitter_state_ << 17;
      const auto pause = std::chrono::duration_cast<Clock::duration>(backoff) / 2 +
                         std::chrono::duration_cast<Clock::duration>(backoff) *
                             static_cast<long>(jitter_state_ % 512) / 1024;
      std::this_thread::sleep_until(std::min(deadline, now + pause));
      backoff =
          std::min(backoff * 2, std::chrono::ceil<std::chrono::milliseconds>(options_.max_poll));
    }
  } catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
  } catch (const std::system_error& e) {
    return e.code();
  }
}

std::error_code RedisLock::release() noexcept {
  if (!held_) return locksmith::make_error_code(locksmith::errc::not_locked);
  held_ = false;
  if (thread_.joinable()) {
    if (!lost_.load()) {
      // Wake the holder thread through its private channel (never the lock channel).
      try {
        const std::lock_guard lk(mu_);
        for (int i = 0; i < 2; ++i) {  // a broken connection reconnects once on the second try
          const Result r = conn_.command({"PUBLISH", release_channel_, "release"});
          if (r && r.value().integer > 0) break;
          if (!r) last_error_ = r.message();
          if (r) break;  // reached nobody: the thread is already leaving (lost)
        }
      } catch (...) {
        // The thread still ends by its health check.
      }
    }
    thread_.join();
  }
  if (lost_.load()) {
    sub_.close();
    return locksmith::make_error_code(locksmith::errc::lock_lost);
  }
  return unsubscribe_all();  // closes the connection on failure, which also drops the channel
}

namespace {

constexpr std::string_view kPubSubScheme = "redis+pubsub://";

[[noreturn]] void bad_pubsub(std::string_view shown, const std::string& why) {
  throw LockError(locksmith::make_error_code(locksmith::errc::invalid_spec),
                  "invalid lock spec (" + why + ")", shown);
}

}  // namespace

std::unique_ptr<Lockable> open_redis_pubsub_lock(std::string_view spec) {
  // Parsed as a redis:// spec after taking out the options of this lock; messages show the
  // spec as given (with the password hidden by parse_redis_spec's redaction).
  const auto shown = [](const std::string& redis_target) {
    return redis_target.rfind("redis://", 0) == 0
               ? std::string(kPubSubScheme) + redis_target.substr(8)
               : redis_target;
  };
  if (spec.substr(0, kPubSubScheme.size()) != kPubSubScheme) {
    bad_pubsub(spec.substr(0, spec.find('@')), "expected redis+pubsub://HOST:PORT/CHANNEL");
  }
  std::string rest(spec.substr(kPubSubScheme.size()));
  std::string query;
  if (const auto q = rest.find('?'); q != std::string::npos) {
    query = rest.substr(q + 1);
    rest.resize(q);
  }
  PubSubOptions options;
  std::string passed;  // the options parse_redis_spec understands
  std::vector<std::pair<std::string, std::string>> own;
  std::string_view qv = query;
  while (!qv.empty()) {
    const auto amp = qv.find('&');
    const std::string_view item = qv.substr(0, amp);
    qv = amp == std::string_view::npos ? std::string_view() : qv.substr(amp + 1);
    if (item.empty()) continue;
    const auto eq = item.find('=');
    const std::string k(item.substr(0, eq));
    const std::string v(eq == std::string_view::npos ? std::string_view() : item.substr(eq + 1));
    if (k == "unavailable_timeout" || k == "health_check_interval" || k == "ttl" ||
        k == "refresh") {
      own.emplace_back(k, v);
    } else {
      if (!passed.empty()) passed += '&';
      passed += item;
    }
  }
  RedisSpec s;
  try {
    s = parse_redis_spec("redis://" + rest + (passed.empty() ? "" : "?" + passed));
  } catch (const LockError& e) {
    throw LockError(e.code(), e.operation(), shown(e.target()));
  }
  const std::string shown_spec = std::string(kPubSubScheme) + s.server.host + ":" +
                                 std::to_string(s.server.port) + "/" + s.key;
  for (const auto& [k, v] : own) {
    if (k == "ttl" || k == "refresh") {
      bad_pubsub(shown_spec, "redis+pubsub has no option '" + k +
                                 "': the lock lives as long as the subscriber connection");
    }
    Clock::duration d{};
    try {
      d = parse_duration(v);
    } catch (const LockError&) {
      std::string why = k;
      why.append(" must be a duration such as 250ms, 1.5s or 2m, not '").append(v).append("'");
      bad_pubsub(shown_spec, why);
    }
    if (d <= Clock::duration::zero()) bad_pubsub(shown_spec, k + " must be positive");
    if (k == "unavailable_timeout") {
      options.unavailable_timeout = d;
    } else {
      options.health_check_interval = d;
    }
  }
  options.timeout = s.options.timeout;
  options.fail_when_locked = s.options.fail_when_locked;
  return std::make_unique<RedisLock>(std::move(s.server), std::move(s.key), options);
}

}  // namespace locksmith::redis
