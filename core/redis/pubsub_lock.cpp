#include "locksmith/redis/pubsub_lock.hpp"
#include "io_deadline.hpp"
#include "token.hpp"

#include <sys/random.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <utility>
#include <vector>

#include "locksmith/error.hpp"
#include "locksmith/redis/spec.hpp"
#include "locksmith/spec.hpp"

namespace locksmith::redis {
namespace {

// A JSON string literal as Python's json.dumps writes it (ensure_ascii): non-ASCII UTF-8 becomes
// \uXXXX escapes (surrogate pairs above U+FFFF); bytes that are not UTF-8 pass through.
std::string json_string(std::string_view s) {
  std::string out = "\"";
  const auto u_escape = [&out](unsigned v) {  // v <= 0xffff
    static constexpr char kHex[] = "0123456789abcdef";
    out += "\\u";
    for (int shift = 12; shift >= 0; shift -= 4) out += kHex[(v >> shift) & 0xfu];
  };
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    switch (c) {
      case '"':
        out += "\\\"";
        continue;
      case '\\':
        out += "\\\\";
        continue;
      case '\n':
        out += "\\n";
        continue;
      case '\r':
        out += "\\r";
        continue;
      case '\t':
        out += "\\t";
        continue;
      case '\b':
        out += "\\b";
        continue;
      case '\f':
        out += "\\f";
        continue;
      default:
        break;
    }
    if (c < 0x20) {
      u_escape(c);
      continue;
    }
    if (c < 0x80) {
      out.push_back(static_cast<char>(c));
      continue;
    }
    // A UTF-8 sequence: its length from the lead byte, then continuation bytes.
    std::size_t len = 0;
    unsigned cp = 0;
    if ((c & 0xe0) == 0xc0) {
      len = 2;
      cp = c & 0x1fU;
    } else if ((c & 0xf0) == 0xe0) {
      len = 3;
      cp = c & 0x0fU;
    } else if ((c & 0xf8) == 0xf0) {
      len = 4;
      cp = c & 0x07U;
    }
    bool ok = len != 0 && i + len <= s.size();
    for (std::size_t k = 1; ok && k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      ok = (cc & 0xc0) == 0x80;
      cp = (cp << 6) | (cc & 0x3fU);
    }
    if (!ok) {
      out.push_back(static_cast<char>(c));  // not UTF-8: the byte as it is
      continue;
    }
    if (cp >= 0x10000) {
      cp -= 0x10000;
      u_escape(0xd800 + (cp >> 10));
      u_escape(0xdc00 + (cp & 0x3ffU));
    } else {
      u_escape(cp);
    }
    i += len - 1;
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

// One member value of a JSON object, as far as the lock protocol cares.
struct JsonValue {
  enum class Kind { string, number, other } kind = Kind::other;
  std::string text;  // the decoded string, or the number's literal text
};

bool json_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// Skips one JSON value at s[i] (any kind, nesting bounded); false when malformed.
bool skip_json_value(std::string_view s, std::size_t& i, int depth) {
  while (i < s.size() && json_ws(s[i])) ++i;
  if (i >= s.size() || depth > 32) return false;
  const char c = s[i];
  if (c == '"') {
    // A string: find its end honouring escapes (the content is not needed).
    for (++i; i < s.size(); ++i) {
      if (s[i] == '\\') {
        ++i;
      } else if (s[i] == '"') {
        ++i;
        return true;
      }
    }
    return false;
  }
  if (c == '{' || c == '[') {
    const char close = c == '{' ? '}' : ']';
    ++i;
    while (i < s.size() && json_ws(s[i])) ++i;
    if (i < s.size() && s[i] == close) {
      ++i;
      return true;
    }
    for (;;) {
      if (c == '{') {
        while (i < s.size() && json_ws(s[i])) ++i;
        if (i >= s.size() || s[i] != '"' || !skip_json_value(s, i, depth + 1)) return false;
        while (i < s.size() && json_ws(s[i])) ++i;
        if (i >= s.size() || s[i] != ':') return false;
        ++i;
      }
      if (!skip_json_value(s, i, depth + 1)) return false;
      while (i < s.size() && json_ws(s[i])) ++i;
      if (i >= s.size()) return false;
      if (s[i] == close) {
        ++i;
        return true;
      }
      if (s[i] != ',') return false;
      ++i;
    }
  }
  // A number or a literal (true, false, null): a run of these characters.
  const std::size_t start = i;
  while (i < s.size() && (std::isalnum(static_cast<unsigned char>(s[i])) != 0 || s[i] == '-' ||
                          s[i] == '+' || s[i] == '.')) {
    ++i;
  }
  return i > start;
}

// True when `t` is a number as Python's float() / json would read one (a legacy reply is
// str(time.time()), e.g. "1764505700.123456").
bool is_number(std::string_view t) {
  if (t.empty() || t.size() > 64) return false;
  const std::string z(t);
  char* end = nullptr;
  errno = 0;
  (void)std::strtod(z.c_str(), &end);
  return end == z.c_str() + z.size() && (std::isdigit(static_cast<unsigned char>(z.back())) != 0);
}

// The top-level members of a JSON object (later duplicates win, as in Python); nullopt when
// `s` is not exactly one JSON object. Nested values are checked and skipped.
std::optional<std::vector<std::pair<std::string, JsonValue>>> json_object(std::string_view s) {
  std::vector<std::pair<std::string, JsonValue>> members;
  std::size_t i = 0;
  const auto ws = [&] {
    while (i < s.size() && json_ws(s[i])) ++i;
  };
  ws();
  if (i >= s.size() || s[i] != '{') return std::nullopt;
  ++i;
  ws();
  bool first = true;
  for (;;) {
    ws();
    if (i >= s.size()) return std::nullopt;
    if (first && s[i] == '}') {
      ++i;
      break;
    }
    first = false;
    auto key = json_string_at(s, i);
    if (!key) return std::nullopt;
    if (!skip_json_value(s, i, 0)) return std::nullopt;  // past the key
    ws();
    if (i >= s.size() || s[i] != ':') return std::nullopt;
    ++i;
    ws();
    JsonValue v;
    const std::size_t at = i;
    if (i < s.size() && s[i] == '"') {
      auto str = json_string_at(s, i);
      if (!str) return std::nullopt;
      v.kind = JsonValue::Kind::string;
      v.text = std::move(*str);
    }
    if (!skip_json_value(s, i, 0)) return std::nullopt;
    if (v.kind != JsonValue::Kind::string && is_number(s.substr(at, i - at))) {
      v.kind = JsonValue::Kind::number;
      v.text = std::string(s.substr(at, i - at));
    }
    bool replaced = false;
    for (auto& m : members) {
      if (m.first == *key) {
        m.second = v;
        replaced = true;
      }
    }
    if (!replaced) members.emplace_back(std::move(*key), std::move(v));
    ws();
    if (i >= s.size()) return std::nullopt;
    if (s[i] == '}') {
      ++i;
      break;
    }
    if (s[i] != ',') return std::nullopt;
    ++i;
  }
  ws();
  if (i != s.size()) return std::nullopt;
  return members;
}

const JsonValue* member(const std::vector<std::pair<std::string, JsonValue>>& obj,
                        std::string_view key) {
  for (const auto& m : obj) {
    if (m.first == key) return &m.second;
  }
  return nullptr;
}

// The "response_channel" of a ping (a JSON object with a non-empty string member of that
// name, as portalocker 4.x requires); nullopt for anything else.
std::optional<std::string> response_channel_of(std::string_view json) {
  const auto obj = json_object(json);
  if (!obj) return std::nullopt;
  const JsonValue* rc = member(*obj, "response_channel");
  if (rc == nullptr || rc->kind != JsonValue::Kind::string || rc->text.empty()) {
    return std::nullopt;
  }
  return rc->text;
}

constexpr int kProtocol = 1;

bool is_hex_id(std::string_view s) {
  return s.size() == 32 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

// A reply to our ping: protocol 1 (a JSON object), legacy (a number: str(time.time())), or
// nullopt for junk, which is ignored. An object of another protocol version counts as an
// exclusive holder (as portalocker 4.x counts anything it cannot read).
std::optional<PubSubHolder> parse_reply(std::string_view data, int& legacy_index) {
  PubSubHolder h;
  const auto legacy = [&] {
    h.holder_id = "legacy-" + std::to_string(legacy_index++);
    h.mode = LockMode::exclusive;
    h.legacy = true;
    return h;
  };
  if (const auto obj = json_object(data)) {
    const JsonValue* protocol = member(*obj, "protocol");
    if (protocol == nullptr) return std::nullopt;
    const JsonValue* id = member(*obj, "holder_id");
    const JsonValue* mode = member(*obj, "mode");
    if (protocol->kind != JsonValue::Kind::number || protocol->text != std::to_string(kProtocol) ||
        id == nullptr || id->kind != JsonValue::Kind::string || mode == nullptr ||
        mode->kind != JsonValue::Kind::string) {
      return legacy();
    }
    h.holder_id = id->text;
    h.pending = mode->text == "pending";
    if (mode->text == "shared") {
      h.mode = LockMode::shared;
    } else if (mode->text != "exclusive" && !h.pending) {
      return legacy();
    }
    return h;
  }
  std::string_view t = data;
  while (!t.empty() && json_ws(t.front())) t.remove_prefix(1);
  while (!t.empty() && json_ws(t.back())) t.remove_suffix(1);
  if (is_number(t)) return legacy();
  return std::nullopt;
}

bool is_push(const Reply& r, std::string_view kind) {
  return r.type == Reply::Type::array && !r.elements.empty() && r.elements[0].str == kind;
}

std::error_code protocol(std::string& last_error, const Connection& c, std::string_view what) {
  last_error = "redis " + c.endpoint() + ": unexpected reply to " + std::string(what);
  return make_error_code(errc::protocol_error);
}

Clock::time_point after(Clock::duration d) { return Lockable::deadline_after(d); }

// A wait for a command's reply: the command timeout, cut to the acquire's I/O deadline.
Clock::time_point reply_deadline(const Connection& c, Clock::time_point io) {
  return std::min(io, after(c.options().command_timeout));
}

// A reply that did not come by `until` (read_until's errc::timeout) is the server not answering:
// ETIMEDOUT with a message naming it, unlike a pinged subscriber that does not answer.
std::error_code no_reply(const Result& r, const Connection& c, Clock::time_point since,
                         Clock::time_point until, std::string& why) {
  if (r.error() == locksmith::errc::timeout) {
    why = c.no_answer(until - since);
    return std::make_error_code(std::errc::timed_out);
  }
  why = r.message().empty() ? "redis " + c.endpoint() + ": no reply" : r.message();
  return r.error() ? r.error() : make_error_code(errc::protocol_error);
}

}  // namespace

RedisLock::RedisLock(ConnectOptions server, std::string channel, PubSubOptions options)
    : channel_(std::move(channel)),
      options_(options),
      conn_(server),
      sub_(server),
      probe_(std::move(server)) {
  if (detail::random_bytes(&jitter_state_, sizeof jitter_state_))
    jitter_state_ = 0x9e3779b97f4a7c15ULL;
  jitter_state_ |= 1;
  if (detail::new_token(holder_id_)) {
    // No randomness from the OS: derive an id from the jitter state (still 32 hex chars).
    std::array<char, 40> buf{};
    std::snprintf(buf.data(), buf.size(), "%016llx%016llx",
                  static_cast<unsigned long long>(jitter_state_),
                  static_cast<unsigned long long>(
                      std::chrono::steady_clock::now().time_since_epoch().count()));
    holder_id_.assign(buf.data(), 32);
  }
  legacy_name_ = channel_ + "-lock";
  client_name_ = legacy_name_ + "-" + holder_id_;
}

RedisLock::~RedisLock() {
  if (held_) {
    (void)RedisLock::release();
  } else if (subscribed_) {
    (void)leave();
  }
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
  if (info.held) info.mode = held_mode_;
  return info;
}

// NUMSUB of the channel. While subscribed, the same command also counts the private release
// channel, which only sub_ subscribes to, together with the channel, and which it leaves only
// together with it (UNSUBSCRIBE of all, or a dropped connection): `self` tells whether this
// object's own subscription is still there at that instant. The holder thread's lost_ lags a
// CLIENT KILL (it has to read the EOF first), so `n == 1` alone does not prove that the one
// subscriber is this object: it may be another contender while ours was just killed.
std::error_code RedisLock::numsub(long long& out, bool& self) {
  const std::lock_guard lk(mu_);
  const detail::ScopedDeadline bounded(conn_, io_);
  const bool mine = subscribed_ && !release_channel_.empty();
  const auto run = [&] {
    return mine ? conn_.command({"PUBSUB", "NUMSUB", channel_, release_channel_})
                : conn_.command({"PUBSUB", "NUMSUB", channel_});
  };
  Result r = run();
  if (!r && !conn_.connected()) {
    // An idle connection dropped meanwhile (server timeout, CLIENT KILL): NUMSUB is safe to
    // repeat, and Connection reconnects once.
    r = run();
  }
  if (!r) {
    last_error_ = r.message();
    return r.error();
  }
  const Reply& v = r.value();
  const std::size_t size = mine ? 4 : 2;
  if (v.type != Reply::Type::array || v.elements.size() != size ||
      v.elements[1].type != Reply::Type::integer ||
      (mine && v.elements[3].type != Reply::Type::integer)) {
    return protocol(last_error_, conn_, "PUBSUB NUMSUB");
  }
  out = v.elements[1].integer;
  self = !mine || v.elements[3].integer > 0;
  return {};
}

std::error_code RedisLock::probe(std::vector<PubSubHolder>& holders) {
  holders.clear();
  try {
    long long n = 0;
    bool self = true;
    if (const auto ec = numsub(n, self)) return ec;
    bool conclusive = false;
    if (const auto ec = collect(n, false, holders, conclusive)) return ec;
    return conclusive ? std::error_code() : locksmith::make_error_code(locksmith::errc::timeout);
  } catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
  }
}

// portalocker 4.x's _collect_lock_holders: ping the channel, gather one reply per subscriber
// (`expected` of them, this object's own included while it is subscribed). Conclusive only when
// every subscriber the PUBLISH reached answered, that number equals `expected`, and NUMSUB did not
// change meanwhile. With `reap_missing`, the silent ones are reaped, but only after a reached
// subscriber stayed silent for unavailable_timeout.
//
// The race this fixes (MixedContendersExclude, violations == 1 about 1 run in 5 in Release). The
// loop used to stop at min(expected, receivers) replies, and a round with fewer replies than
// `expected` but NUMSUB back at `expected` reaped every "<channel>-lock-<id>" pubsub client whose
// id had not answered. NUMSUB counts, not identities, so one departure plus one arrival looks
// like no change. Observed interleaving (A contends exclusive; B holds exclusive, then shared):
//   1. B holds exclusive. A subscribes; NUMSUB = 2 {A, B}: expected = 2; A probes.
//   2. B releases: its UNSUBSCRIBE is confirmed before A's PUBLISH, so receivers = 1 {A}; A's
//      loop ends after its own reply.
//   3. B calls lock_shared() at once: it re-SUBSCRIBEs on the same connection (same client id,
//      same name), after A's PUBLISH, so it never got A's ping.
//   4. A's second NUMSUB = 2 {A, B} == expected, replies 1 < 2: A reaps; CLIENT LIST shows B's
//      connection whose id did not answer, and A CLIENT KILLs it (a live newcomer, not a hung
//      holder).
//   5. B's NUMSUB, after the kill: 1 (only A). B's thread has not read the EOF yet, so lost_ is
//      still false, and B took the lock shared "alone" (see numsub(): now also checked by `self`).
//   6. A loops (it reaped someone): claims, NUMSUB = 1 (itself): A takes it exclusive while B
//      holds it shared. B's release later reports lock_lost.
// A second hole of the same kind: with receivers > expected (one arrived before the PUBLISH), the
// loop stopped after `expected` replies, so it could count a reply of a subscriber that then
// left instead of waiting for the newcomer's, e.g. a writer's verify round missing a shared
// holder whose thread answered last, with NUMSUB again == expected after the leaver went.
// Now: every subscriber the PUBLISH reached answers (a holder's thread, a contender in
// subscribe() and a leaver in unsubscribe_all() all answer pings delivered before their
// UNSUBSCRIBE is confirmed), so the loop waits for all `receivers` replies (this costs time only
// when one hangs); a round is conclusive only when receivers == expected == NUMSUB afterwards,
// this object is still subscribed, and every receiver answered; a subscriber arriving after the
// PUBLISH pings on its own later and then sees this object's claimed mode. Reaping happens only
// when a subscriber the PUBLISH reached stayed silent for unavailable_timeout, never because of
// churn.
std::error_code RedisLock::collect(long long expected, bool reap_missing,
                                   std::vector<PubSubHolder>& out, bool& conclusive) {
  out.clear();
  conclusive = false;
  long long receivers = 0;
  bool timed_out = false;  // a subscriber the PUBLISH reached did not answer in time
  if (expected > 0) {
    std::string rnd;
    if (const auto ec = detail::new_token(rnd)) {
      set_error("getrandom: " + ec.message());
      return ec;
    }
    const std::string rc = channel_ + "-" + rnd;
    const detail::ScopedDeadline bounded(probe_, io_);
    const auto io_deadline = [&] { return reply_deadline(probe_, io_); };
    if (const auto ec = probe_.send({"SUBSCRIBE", rc})) {
      set_error(probe_.last_error());
      return ec;
    }
    const auto asked = Clock::now();
    const auto confirm_by = io_deadline();
    for (;;) {
      Result r = probe_.read_until(confirm_by);
      if (!r) {
        probe_.close();
        std::string why;
        const auto ec = no_reply(r, probe_, asked, confirm_by, why);
        set_error(std::move(why));
        return ec;
      }
      if (is_push(r.value(), "subscribe")) break;
    }
    const std::string ping =
        "{\"message\": \"ping\", \"response_channel\": " + json_string(rc) + "}";
    {
      const std::lock_guard lk(mu_);
      const detail::ScopedDeadline bounded_conn(conn_, io_);
      const Result r = conn_.command({"PUBLISH", channel_, ping});
      if (!r) {
        last_error_ = r.message();
        probe_.close();
        return r.error();
      }
      receivers = r.value().integer;
    }
    if (receivers > 0) {
      int legacy_index = 0;
      const auto until = after(options_.unavailable_timeout);
      // The PUBLISH reached `receivers` subscribers: wait for all of them, not just `expected`
      // (see the comment above this function); no more replies can come.
      while (static_cast<long long>(out.size()) < receivers) {
        Result r = probe_.read_until(until);
        if (!r) {
          if (r.error() == locksmith::errc::timeout) {
            timed_out = true;
            break;
          }
          probe_.close();
          set_error(r.message());
          return r.error();
        }
        const Reply& v = r.value();
        if (!is_push(v, "message") || v.elements.size() != 3 || v.elements[1].str != rc) continue;
        auto h = parse_reply(v.elements[2].str, legacy_index);
        if (!h) continue;  // junk on our response channel: not an answer
        auto same = std::find_if(out.begin(), out.end(), [&](const PubSubHolder& o) {
          return o.holder_id == h->holder_id;
        });
        if (same != out.end()) {
          *same = std::move(*h);
        } else {
          out.push_back(std::move(*h));
        }
      }
    }
    // Leave the response channel; a connection that fails here is simply closed.
    bool left = !probe_.send({"UNSUBSCRIBE", rc});
    while (left) {
      Result r = probe_.read_until(io_deadline());
      if (!r) {
        probe_.close();
        break;
      }
      if (is_push(r.value(), "unsubscribe")) break;
    }
    if (!left) probe_.close();
  }
  long long now_subscribed = 0;
  bool self = true;
  if (const auto ec = numsub(now_subscribed, self)) return ec;
  // Someone came or went (before or after the PUBLISH), or this object's own subscription is
  // gone (killed; its reply may still have come): ask again, reaping nobody.
  if (now_subscribed != expected || receivers != expected || !self) return {};
  if (static_cast<long long>(out.size()) < receivers) {
    if (reap_missing && timed_out) return reap(out);
    return {};
  }
  conclusive = true;
  return {};
}

// portalocker 4.x's _kill_unavailable_locks: CLIENT KILL the pubsub clients of this channel's
// lock that did not answer: "<channel>-lock" (a legacy holder) unless a legacy reply came, and
// "<channel>-lock-<32 hex>" whose id is not among the replies (never this object's own).
std::error_code RedisLock::reap(const std::vector<PubSubHolder>& responders) {
  const bool legacy_responded = std::any_of(responders.begin(), responders.end(),
                                            [](const PubSubHolder& h) { return h.legacy; });
  const std::lock_guard lk(mu_);
  const detail::ScopedDeadline bounded(conn_, io_);
  const Result r = conn_.command({"CLIENT", "LIST", "TYPE", "pubsub"});
  if (!r) {
    last_error_ = r.message();
    return r.error();
  }
  const std::string& list = r.value().str;
  const std::string prefix = legacy_name_ + "-";
  std::size_t pos = 0;
  while (pos < list.size()) {
    auto nl = list.find('\n', pos);
    if (nl == std::string::npos) nl = list.size();
    const std::string line = " " + list.substr(pos, nl - pos) + " ";
    pos = nl + 1;
    const auto n = line.find(" name=");
    if (n == std::string::npos || line.rfind(" id=", 0) != 0) continue;
    const auto name_end = line.find(' ', n + 6);
    const std::string name = line.substr(n + 6, name_end - (n + 6));
    bool kill = false;
    if (name == legacy_name_) {
      kill = !legacy_responded;
    } else if (name.size() > prefix.size() && name.compare(0, prefix.size(), prefix) == 0) {
      const std::string id = name.substr(prefix.size());
      kill = is_hex_id(id) && id != holder_id_ &&
             std::none_of(responders.begin(), responders.end(),
                          [&](const PubSubHolder& h) { return !h.legacy && h.holder_id == id; });
    }
    if (!kill) continue;
    const std::string id = line.substr(4, line.find(' ', 4) - 4);
    const Result k = conn_.command({"CLIENT", "KILL", "ID", id});
    if (k && k.value().integer > 0) ++reaped_;
  }
  return {};
}

// SUBSCRIBE the channel (and the private release channel) on sub_, named "<channel>-lock-<id>",
// and start the thread that answers pings with reply_mode_.
std::error_code RedisLock::subscribe() {
  std::string rnd;
  if (const auto ec = detail::new_token(rnd)) {
    set_error("getrandom: " + ec.message());
    return ec;
  }
  release_channel_ = client_name_ + "-release-" + rnd;
  // The connection of the previous hold is reused when its UNSUBSCRIBE was confirmed. SETNAME
  // and SUBSCRIBE are pipelined (one round trip); SETNAME is sent every time, so a connection
  // that was re-opened gets the name too. A reused connection that turns out dead (a server
  // timeout, a reaper) gets one fresh try.
  // The holder thread owns sub_ once it runs: the deadline is taken off before it starts.
  sub_.set_deadline(io_);
  for (int attempt = 0;; ++attempt) {
    const bool reused = sub_.connected();
    if (!reused) {
      if (const auto ec = sub_.connect()) {
        sub_.set_deadline(Connection::kNoDeadline);
        set_error(sub_.last_error());
        return ec;
      }
    }
    std::error_code ec = sub_.send({"CLIENT", "SETNAME", client_name_});
    if (!ec) ec = sub_.send({"SUBSCRIBE", channel_, release_channel_});
    std::string why;
    bool named = false;
    int confirmed = 0;
    const auto asked = Clock::now();
    const auto io_deadline = reply_deadline(sub_, io_);
    while (!ec && confirmed < 2) {
      Result r = sub_.read_until(io_deadline);
      if (!r) {
        ec = no_reply(r, sub_, asked, io_deadline, why);
        break;
      }
      const Reply& v = r.value();
      if (!named) {
        named = true;  // the SETNAME reply comes first (an error reply is a failed Result)
        continue;
      }
      if (is_push(v, "subscribe")) {
        ++confirmed;
      } else if (is_push(v, "message") && v.elements.size() == 3 && v.elements[1].str == channel_) {
        answer(v.elements[2].str);  // a contender's ping between the two confirmations
      }
    }
    if (!ec) break;
    sub_.close();
    if (reused && attempt == 0) continue;
    sub_.set_deadline(Connection::kNoDeadline);
    set_error(why.empty() ? sub_.last_error() : why);
    return ec;
  }
  sub_.set_deadline(Connection::kNoDeadline);
  lost_ = false;
  try {
    thread_ = std::thread([this] { holder_loop(); });
  } catch (const std::system_error& e) {
    sub_.close();
    set_error(std::string("cannot start the holder thread: ") + e.what());
    return e.code();
  }
  subscribed_ = true;
  return {};
}

// Stops the thread (through the private release channel) and leaves the channel.
std::error_code RedisLock::leave() noexcept {
  subscribed_ = false;
  if (thread_.joinable()) {
    if (!lost_.load()) {
      // Wake the holder thread through its private channel (never the lock channel).
      try {
        const std::lock_guard lk(mu_);
        const detail::ScopedDeadline bounded(conn_, io_);
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
        answer(v.elements[2].str);  // still subscribed until the server confirms
      }
    }
  } catch (...) {
    sub_.close();
    return std::make_error_code(std::errc::not_enough_memory);
  }
}

// portalocker 4.x's channel_handler: PUBLISH {"holder_id", "mode", "protocol": 1} on the ping's
// response_channel. Anything that is not a ping is ignored (a legacy holder would crash on it).
void RedisLock::answer(const std::string& data) noexcept {
  try {
    const auto rc = response_channel_of(data);
    if (!rc) return;
    const char* mode = "pending";
    switch (static_cast<Reply1>(reply_mode_.load())) {
      case Reply1::exclusive:
        mode = "exclusive";
        break;
      case Reply1::shared:
        mode = "shared";
        break;
      case Reply1::pending:
        break;
    }
    const std::string reply = "{\"holder_id\": " + json_string(holder_id_) + ", \"mode\": \"" +
                              mode + "\", \"protocol\": " + std::to_string(kProtocol) + "}";
    const std::lock_guard lk(mu_);
    const Result r = conn_.command({"PUBLISH", *rc, reply});
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
        if (v.elements[1].str == release_channel_) return;  // leave(): still subscribed
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
  const std::lock_guard lk(notice_mu_);
  if (notice_) notice_();
}

std::error_code RedisLock::keep_alive() noexcept {
  if (!held_) return locksmith::make_error_code(locksmith::errc::not_locked);
  if (lost_.load()) return locksmith::make_error_code(locksmith::errc::lock_lost);
  return {};
}

bool RedisLock::on_loss(const std::function<void()>& notice) noexcept {
  try {
    const std::lock_guard lk(notice_mu_);
    notice_ = notice;
    return true;
  } catch (...) {
    return false;  // out of memory: the keeper then finds the loss by keep_alive()
  }
}

std::error_code RedisLock::acquire(LockMode mode, Clock::time_point deadline) noexcept {
  if (held_) return std::make_error_code(std::errc::resource_deadlock_would_occur);
  const bool shared = mode == LockMode::shared;
  const auto mine = shared ? Reply1::shared : Reply1::pending;
  reply_mode_ = static_cast<int>(mine);
  const auto set_reply = [this](Reply1 m) { reply_mode_ = static_cast<int>(m); };
  const auto take = [&] {
    set_reply(shared ? Reply1::shared : Reply1::exclusive);
    held_mode_ = mode;
    held_ = true;
  };
  // Every connect and round trip of this acquire ends by its deadline (see io_deadline()).
  struct IoScope {
    Clock::time_point& io;
    ~IoScope() { io = Connection::kNoDeadline; }
  } io_scope{io_};
  const auto entry = Clock::now();
  const auto fail = [&](std::error_code ec) {
    if (subscribed_) (void)leave();
    return detail::with_context(ec, last_error());
  };
  // No holder answered exclusive (a legacy one counts as exclusive), and this object's id is the
  // smallest of the pending ones: the elected writer.
  const auto elected = [&](const std::vector<PubSubHolder>& hs) {
    const PubSubHolder* smallest = nullptr;
    for (const auto& h : hs) {
      if (h.mode == LockMode::exclusive && !h.pending) return false;
      if (h.pending && (smallest == nullptr || h.holder_id < smallest->holder_id)) smallest = &h;
    }
    return smallest != nullptr && smallest->holder_id == holder_id_;
  };
  const auto any_shared = [](const std::vector<PubSubHolder>& hs) {
    return std::any_of(hs.begin(), hs.end(),
                       [](const PubSubHolder& h) { return h.mode == LockMode::shared; });
  };
  try {
    bool first = true;
    bool writer_elected = false;
    auto backoff = std::chrono::milliseconds(1);
    std::vector<PubSubHolder> holders;
    for (;;) {
      io_ = detail::io_deadline(deadline, entry);
      if (subscribed_ && lost_.load()) {
        (void)leave();  // our contending subscription died: start over
        writer_elected = false;
      }
      if (!subscribed_) {
        if (const auto ec = subscribe()) return fail(ec);
      }
      // Claim, then look: from here on a newcomer's probe sees this writer as exclusive.
      if (!shared) set_reply(Reply1::exclusive);
      long long n = 0;
      bool self = true;
      if (const auto ec = numsub(n, self)) return fail(ec);
      // `self`: the one subscriber is this object, not another one while ours was just killed
      // (that race gave two holders; see numsub()).
      if (n == 1 && self && !lost_.load()) {
        take();
        return {};
      }
      set_reply(mine);
      bool conclusive = false;
      if (n > 1) {
        const auto reaped_before = reaped_;
        if (const auto ec = collect(n, true, holders, conclusive)) return fail(ec);
        if (reaped_ != reaped_before) continue;  // a dead holder went: look again at once
      }
      // n < 1 (or lost, or !self): our own subscription is gone; not conclusive, start over.
      conclusive = conclusive && self && !lost_.load();
      bool stay = false;
      if (conclusive && shared &&
          std::all_of(holders.begin(), holders.end(),
                      [](const PubSubHolder& h) { return h.mode == LockMode::shared; })) {
        take();
        return {};
      }
      if (conclusive && !shared && elected(holders)) {
        writer_elected = true;
        stay = true;
        if (!any_shared(holders)) {
          // Claim, then verify with a second probe: no other exclusive or shared holder.
          set_reply(Reply1::exclusive);
          long long n2 = 0;
          bool self2 = true;
          if (const auto ec = numsub(n2, self2)) return fail(ec);
          bool verified = false;
          if (const auto ec = collect(n2, true, holders, verified)) return fail(ec);
          if (verified && self2 && !lost_.load() &&
              std::none_of(holders.begin(), holders.end(), [&](const PubSubHolder& h) {
                return h.holder_id != holder_id_ && (!h.pending || h.legacy);
              })) {
            take();
            return {};
          }
          set_reply(Reply1::pending);
        }
      } else if (!conclusive && writer_elected && n >= 1 && self) {
        stay = true;  // an inconclusive probe does not cost the elected writer its place
      }
      if (!stay) {
        writer_elected = false;
        (void)leave();
      }
      const auto now = Clock::now();
      if (now >= deadline) {
        return fail(locksmith::make_error_code(
            first && deadline <= entry ? locksmith::errc::busy : locksmith::errc::timeout));
      }
      first = false;
      // Exponential backoff with jitter (xorshift), so two racing contenders separate.
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
    return fail(std::make_error_code(std::errc::not_enough_memory));
  } catch (const std::system_error& e) {
    return fail(e.code());
  }
}

std::error_code RedisLock::release() noexcept {
  if (!held_) return locksmith::make_error_code(locksmith::errc::not_locked);
  held_ = false;
  return leave();
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
        k == "refresh" || k == "shared") {
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
  // (Repeats among the options passed on were refused by parse_redis_spec.)
  for (std::size_t i = 0; i < own.size(); ++i) {
    for (std::size_t j = 0; j < i; ++j) {
      if (own[i].first == own[j].first) {
        bad_pubsub(shown_spec, "option '" + own[i].first + "' given twice; give it once");
      }
    }
  }
  for (const auto& [k, v] : own) {
    if (k == "ttl" || k == "refresh") {
      bad_pubsub(shown_spec, "redis+pubsub has no option '" + k +
                                 "': the lock lives as long as the subscriber connection");
    }
    if (k == "shared") {
      if (v == "1" || v == "true" || v == "yes" || v.empty()) {
        options.shared = true;
      } else if (v == "0" || v == "false" || v == "no") {
        options.shared = false;
      } else {
        bad_pubsub(shown_spec, "shared must be 0 or 1, not '" + v + "'");
      }
      continue;
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
