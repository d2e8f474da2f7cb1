#include "locksmith/redis/registry.hpp"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <utility>

#include "locksmith/error.hpp"
#include "registry_internal.hpp"

namespace locksmith::redis {
namespace detail {

const Script& registered_acquire_script() {
  static const Script s(std::string(kTakeWithFenceLua) + R"lua(
local fields = {}
for i = 4, #ARGV do
  fields[#fields + 1] = ARGV[i]
end
fields[#fields + 1] = 'fence'
fields[#fields + 1] = fence
fields[#fields + 1] = 'token_sha1'
fields[#fields + 1] = redis.sha1hex(ARGV[1])
local ok = redis.pcall('del', KEYS[3])
if not (type(ok) == 'table' and ok.err) then
  ok = redis.pcall('hset', KEYS[3], unpack(fields))
end
if not (type(ok) == 'table' and ok.err) then
  ok = redis.pcall('sadd', KEYS[4], ARGV[3])
end
if type(ok) == 'table' and ok.err then
  redis.call('del', KEYS[1])
  return ok
end
return {1, fence}
)lua");
  return s;
}

const Script& registered_release_script() {
  static const Script s(R"lua(
local token = redis.call('get', KEYS[1])
if not token then
  return 0
end
if token ~= ARGV[1] then
  return -1
end
redis.call('del', KEYS[1])
redis.pcall('del', KEYS[3])
redis.pcall('srem', KEYS[4], ARGV[2])
redis.pcall('publish', KEYS[2], '')
return 1
)lua");
  return s;
}

}  // namespace detail

namespace {

// For each key (ARGV, or every member of the index KEYS[1]): {key, state, pttl, record}, state 0
// registered (record = HGETALL of <key>:info), 1 unregistered owner, 2 not a string. A key that
// does not exist has its record deleted and is removed from the index.
const Script& read_script() {
  static const Script s(R"lua(
local keys = ARGV
if #keys == 0 then
  keys = redis.call('smembers', KEYS[1])
end
local out = {}
for _, k in ipairs(keys) do
  local info = k .. ':info'
  local t = redis.call('type', k).ok
  if t == 'none' then
    redis.pcall('del', info)
    redis.call('srem', KEYS[1], k)
  elseif t ~= 'string' then
    out[#out + 1] = {k, 2, redis.call('pttl', k), {}}
  else
    local rec = redis.pcall('hgetall', info)
    local sha = nil
    if not rec.err then
      for i = 1, #rec, 2 do
        if rec[i] == 'token_sha1' then
          sha = rec[i + 1]
        end
      end
    end
    if sha ~= nil and sha == redis.sha1hex(redis.call('get', k)) then
      out[#out + 1] = {k, 0, redis.call('pttl', k), rec}
    else
      out[#out + 1] = {k, 1, redis.call('pttl', k), {}}
    end
  end
end
return out
)lua");
  return s;
}

// Owner-only PTTL change: ARGV token, ms, replace ("1": PTTL := ms, "0": PTTL += ms).
// Returns 1 done, 0 no such key, -1 another token.
const Script& ttl_script() {
  static const Script s(R"lua(
local token = redis.call('get', KEYS[1])
if not token then
  return 0
end
if token ~= ARGV[1] then
  return -1
end
local ttl = tonumber(ARGV[2])
if ARGV[3] == '0' then
  local left = redis.call('pttl', KEYS[1])
  if left > 0 then
    ttl = ttl + left
  end
end
redis.call('pexpire', KEYS[1], ttl)
return 1
)lua");
  return s;
}

std::string host_name() {
  std::array<char, 256> buf{};
  if (::gethostname(buf.data(), buf.size() - 1) != 0) return "?";
  return buf.data();
}

}  // namespace

const char* to_string(LeaseRecord::State s) noexcept {
  switch (s) {
    case LeaseRecord::State::registered:
      return "held";
    case LeaseRecord::State::unregistered:
      return "held by an unregistered owner";
    case LeaseRecord::State::wrong_type:
      return "not a lease (wrong type)";
  }
  return "?";
}

LeaseRegistry::LeaseRegistry(ConnectOptions server, std::string prefix)
    : server_(std::move(server)),
      prefix_(std::move(prefix)),
      index_(prefix_ + "index"),
      conn_(server_) {}

namespace {

// `name` as a message shows it: control characters escaped, cut after 64 bytes.
std::string shown_name(std::string_view name) {
  constexpr std::size_t kShown = 64;
  std::string out = "'";
  for (const char c : name.substr(0, kShown)) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (u < 0x20 || u == 0x7f) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[u >> 4];
      out += kHex[u & 0xf];
    } else {
      out += c;
    }
  }
  out += "'";
  if (name.size() > kShown) out += "...";
  return out;
}

}  // namespace

std::string LeaseRegistry::name_problem(std::string_view name) {
  if (name.empty()) return "a lease name cannot be empty";
  if (name.size() > kMaxNameBytes) {
    return "lease name " + shown_name(name) + " is " + std::to_string(name.size()) +
           " bytes long; at most " + std::to_string(kMaxNameBytes);
  }
  for (std::size_t i = 0; i < name.size(); ++i) {
    const auto u = static_cast<unsigned char>(name[i]);
    if (u < 0x20 || u == 0x7f) {
      return "lease name " + shown_name(name) + " has a control character at byte " +
             std::to_string(i) + "; names are one line of text";
    }
  }
  if (name == "index") return "'index' is the registry's own index, not a lease name";
  return {};
}

std::error_code LeaseRegistry::check_name(std::string_view name) {
  std::string why = name_problem(name);
  if (!why.empty()) {
    last_error_ = "invalid lease name: " + why;
    return locksmith::make_error_code(locksmith::errc::invalid_spec);
  }
  return {};
}

std::unique_ptr<RedisLease> LeaseRegistry::open(std::string_view name, std::string creator,
                                                LeaseOptions options) const {
  if (const std::string why = name_problem(name); !why.empty()) {
    throw LockError(locksmith::make_error_code(locksmith::errc::invalid_spec),
                    "open lease (" + why + ")", conn_.endpoint() + "/" + prefix_);
  }
  const auto created = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::system_clock::now().time_since_epoch());
  std::vector<std::pair<std::string, std::string>> info{
      {"creator", std::move(creator)},
      {"host", host_name()},
      {"pid", std::to_string(::getpid())},
      {"created_ms", std::to_string(created.count())}};
  for (auto& [field, value] : options.info) {  // the caller's fields win
    const auto same = [&f = field](const auto& kv) { return kv.first == f; };
    if (const auto it = std::find_if(info.begin(), info.end(), same); it != info.end()) {
      it->second = std::move(value);
    } else if (field != "fence" && field != "token_sha1") {
      info.emplace_back(std::move(field), std::move(value));
    }
  }
  options.info = std::move(info);
  options.index_key = index_;
  return std::make_unique<RedisLease>(server_, key(name), std::move(options));
}

std::error_code LeaseRegistry::read(const std::vector<std::string>& keys,
                                    std::vector<LeaseRecord>& out) {
  out.clear();
  const Result r = conn_.eval_list(read_script(), {index_}, keys);
  if (!r) {
    last_error_ = r.message();
    return r.error();
  }
  const auto bad = [&] {
    last_error_ = "redis " + conn_.endpoint() + ": unexpected reply to the list script";
    out.clear();
    return make_error_code(errc::protocol_error);
  };
  if (r.value().type != Reply::Type::array) return bad();
  for (const Reply& e : r.value().elements) {
    if (e.type != Reply::Type::array || e.elements.size() != 4 ||
        e.elements[0].type != Reply::Type::string || e.elements[1].type != Reply::Type::integer ||
        e.elements[2].type != Reply::Type::integer || e.elements[3].type != Reply::Type::array) {
      return bad();
    }
    LeaseRecord rec;
    rec.key = e.elements[0].str;
    rec.name =
        rec.key.compare(0, prefix_.size(), prefix_) == 0 ? rec.key.substr(prefix_.size()) : rec.key;
    rec.state = static_cast<LeaseRecord::State>(e.elements[1].integer);
    if (const long long pttl = e.elements[2].integer; pttl >= 0) {
      rec.ttl_remaining = std::chrono::milliseconds(pttl);
    }
    const auto& fields = e.elements[3].elements;
    for (std::size_t i = 0; i + 1 < fields.size(); i += 2) {
      const std::string& f = fields[i].str;
      const std::string& v = fields[i + 1].str;
      try {
        if (f == "creator") {
          rec.creator = v;
        } else if (f == "host") {
          rec.host = v;
        } else if (f == "pid") {
          rec.pid = std::stoll(v);
        } else if (f == "created_ms") {
          rec.created = std::chrono::system_clock::time_point(
              std::chrono::duration_cast<std::chrono::system_clock::duration>(
                  std::chrono::milliseconds(std::stoll(v))));
        } else if (f == "fence") {
          rec.fence = std::stoull(v);
        }
      } catch (const std::logic_error&) {
        // A malformed field (written by someone else) is left out.
      }
    }
    out.push_back(std::move(rec));
  }
  return {};
}

std::error_code LeaseRegistry::list(std::vector<LeaseRecord>& out) { return read({}, out); }

std::error_code LeaseRegistry::show(std::string_view name, std::optional<LeaseRecord>& out) {
  out.reset();
  if (const auto ec = check_name(name)) return ec;
  std::vector<LeaseRecord> found;
  if (const auto ec = read({key(name)}, found)) return ec;
  if (!found.empty()) out = std::move(found.front());
  return {};
}

std::error_code LeaseRegistry::release(std::string_view name, std::string_view token) {
  if (const auto ec = check_name(name)) return ec;
  const std::string k = key(name);
  const Result r =
      conn_.eval_list(detail::registered_release_script(),
                      {k, k + ":released", k + ":info", index_}, {std::string(token), k});
  if (!r) {
    last_error_ = r.message();
    return r.error();
  }
  if (r.value().type != Reply::Type::integer) {
    last_error_ = "redis " + conn_.endpoint() + ": unexpected reply to the release script";
    return make_error_code(errc::protocol_error);
  }
  if (r.value().integer == 0) {
    last_error_ = "release lease " + std::string(name) + " on " + conn_.endpoint() + ": not held";
    return locksmith::make_error_code(locksmith::errc::not_locked);
  }
  if (r.value().integer != 1) {
    last_error_ = "release lease " + std::string(name) + " on " + conn_.endpoint() +
                  ": held under another token (not the owner)";
    return locksmith::make_error_code(locksmith::errc::lock_lost);
  }
  return {};
}

std::error_code LeaseRegistry::owner_script(std::string_view what, std::string_view name,
                                            std::string_view token, std::chrono::milliseconds ms,
                                            bool replace) {
  if (const auto ec = check_name(name)) return ec;
  if (ms.count() < 1) {
    last_error_ = std::string(what) + " lease " + std::string(name) + ": duration must be >= 1ms";
    return std::make_error_code(std::errc::invalid_argument);
  }
  const Result r =
      conn_.eval_list(ttl_script(), {key(name)},
                      {std::string(token), std::to_string(ms.count()), replace ? "1" : "0"});
  if (!r) {
    last_error_ = r.message();
    return r.error();
  }
  if (r.value().type != Reply::Type::integer) {
    last_error_ =
        "redis " + conn_.endpoint() + ": unexpected reply to the " + std::string(what) + " script";
    return make_error_code(errc::protocol_error);
  }
  if (r.value().integer == 0) {
    last_error_ = std::string(what) + " lease " + std::string(name) + " on " + conn_.endpoint() +
                  ": not held";
    return locksmith::make_error_code(locksmith::errc::not_locked);
  }
  if (r.value().integer != 1) {
    last_error_ = std::string(what) + " lease " + std::string(name) + " on " + conn_.endpoint() +
                  ": held under another token (not the owner)";
    return locksmith::make_error_code(locksmith::errc::lock_lost);
  }
  return {};
}

std::error_code LeaseRegistry::keep_alive(std::string_view name, std::string_view token,
                                          std::chrono::milliseconds ttl) {
  return owner_script("keep-alive", name, token, ttl, true);
}

std::error_code LeaseRegistry::extend(std::string_view name, std::string_view token,
                                      std::chrono::milliseconds by) {
  return owner_script("extend", name, token, by, false);
}

std::error_code LeaseRegistry::force_release(std::string_view name, bool* existed) {
  if (existed != nullptr) *existed = false;
  if (const auto ec = check_name(name)) return ec;
  const std::string k = key(name);
  const Result r = conn_.eval_list(detail::force_release_script(),
                                   {k, k + ":released", k + ":info", index_}, {k});
  if (!r) {
    last_error_ = r.message();
    return r.error();
  }
  if (existed != nullptr) *existed = r.value().integer > 0;
  return {};
}

}  // namespace locksmith::redis
