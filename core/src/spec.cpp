#include "locksmith/spec.hpp"

#include <array>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <functional>
#include <mutex>
#include <string>

#include "locksmith/auto_lock.hpp"
#include "locksmith/file_lock.hpp"
#include "locksmith/link_lock.hpp"
#include "locksmith/lockfile_locks.hpp"
#include "locksmith/semaphore.hpp"

namespace locksmith {
namespace {

constexpr std::array<std::string_view, 4> kFileKinds = {"flock", "fcntl", "posix", "ofd"};
constexpr std::array<std::string_view, 5> kProtocolKinds = {"link", "mkdir", "dotlock", "pidfile",
                                                            "auto"};

// The options each kind accepts.
std::string_view allowed_options(std::string_view kind) {
  if (kind == "sem") return "timeout, fail_when_locked, perms, follow_symlinks, max, shared";
  if (kind == "mkdir") return "timeout, fail_when_locked, perms, stale, stale_grace";
  if (kind == "link") return "timeout, fail_when_locked, perms, lifetime, slop";
  if (kind == "pidfile") {
    return "timeout, fail_when_locked, perms, stale, stale_grace, break_stale";
  }
  if (kind == "dotlock") return "timeout, fail_when_locked, perms, stale_age";
  if (kind == "auto") {
    return "shared, timeout, fail_when_locked, perms, follow_symlinks, lifetime, check_mount";
  }
  return "shared, timeout, fail_when_locked, perms, follow_symlinks, keep_open";
}

bool option_allowed(std::string_view kind, std::string_view key) {
  const std::string_view list = allowed_options(kind);
  for (std::size_t at = 0; at < list.size();) {
    const auto comma = list.find(", ", at);
    const std::string_view item = list.substr(at, comma - at);
    if (item == key) return true;
    if (comma == std::string_view::npos) break;
    at = comma + 2;
  }
  return false;
}
constexpr std::array<std::string_view, 3> kLaterSchemes = {"redis", "redis+pubsub", "redlock"};

template <std::size_t N>
bool contains(const std::array<std::string_view, N>& set, std::string_view v) {
  for (auto s : set) {
    if (s == v) return true;
  }
  return false;
}

// Joins pieces into one message. (It also sidesteps GCC 12's false -Wrestrict on
// `"literal" + std::string(...)` chains at -O2.)
template <class... Parts>
std::string cat(const Parts&... parts) {
  std::string out;
  (out.append(std::string_view(parts)), ...);
  return out;
}

[[noreturn]] void bad_spec(std::string_view spec, const std::string& why,
                           errc code = errc::invalid_spec) {
  throw LockError(make_error_code(code), "invalid lock spec (" + why + ")", spec);
}

bool parse_flag(std::string_view spec, std::string_view key, std::string_view value) {
  if (value == "1" || value == "true" || value == "yes" || value.empty()) return true;
  if (value == "0" || value == "false" || value == "no") return false;
  bad_spec(spec, cat(key, " must be 1 or 0, not '", value, "'"));
}

unsigned parse_unsigned(std::string_view spec, std::string_view key, std::string_view value,
                        int base) {
  unsigned v = 0;
  const auto* end = value.data() + value.size();
  const auto [ptr, err] = std::from_chars(value.data(), end, v, base);
  if (value.empty() || err != std::errc() || ptr != end) {
    bad_spec(spec, cat(key, " must be a number, not '", value, "'"));
  }
  return v;
}

// Openers of URL-style specs, registered by the libraries that implement them.
struct SchemeRegistry {
  std::mutex mutex;
  std::map<std::string, SchemeOpener, std::less<>> openers;
};

SchemeRegistry& schemes() {
  static SchemeRegistry registry;
  return registry;
}

SchemeOpener find_scheme(std::string_view scheme) {
  auto& r = schemes();
  const std::lock_guard guard(r.mutex);
  const auto it = r.openers.find(scheme);
  return it == r.openers.end() ? nullptr : it->second;
}

// The spec as messages show it: a URL's password (SCHEME://USER:PASSWORD@...) replaced by ***.
std::string redacted(std::string_view spec) {
  const auto scheme_end = spec.find("://");
  if (scheme_end == std::string_view::npos) return std::string(spec);
  const std::size_t from = scheme_end + 3;
  const std::string_view authority = spec.substr(from, spec.find_first_of("/?", from) - from);
  const auto at = authority.rfind('@');
  if (at == std::string_view::npos) return std::string(spec);
  const auto colon = authority.substr(0, at).find(':');
  if (colon == std::string_view::npos) return std::string(spec);
  return cat(spec.substr(0, from + colon + 1), "***", spec.substr(from + at));
}

// key=value pairs after '?', joined by '&'. A key given twice is refused: which one was meant
// is a guess, and a map would silently keep the last.
void parse_query(std::string_view spec, std::string_view q, std::map<std::string, std::string>& out,
                 const std::function<void(const std::string&)>& check_key) {
  while (!q.empty()) {
    const auto amp = q.find('&');
    const std::string_view pair = q.substr(0, amp);
    q = amp == std::string_view::npos ? std::string_view() : q.substr(amp + 1);
    if (pair.empty()) continue;
    const auto eq = pair.find('=');
    std::string key(pair.substr(0, eq));
    check_key(key);
    std::string value(eq == std::string_view::npos ? "" : pair.substr(eq + 1));
    if (const auto it = out.find(key); it != out.end()) {
      bad_spec(redacted(spec), cat("option '", key, "' given twice ('", it->second, "' and '",
                                   value, "'); give it once"));
    }
    out.emplace(std::move(key), std::move(value));
  }
}

}  // namespace

void register_lock_scheme(std::string scheme, SchemeOpener opener) {
  auto& r = schemes();
  const std::lock_guard guard(r.mutex);
  r.openers[std::move(scheme)] = opener;
}

Clock::duration parse_duration(std::string_view text) {
  std::size_t unit_at = 0;
  while (unit_at < text.size() &&
         (std::isdigit(static_cast<unsigned char>(text[unit_at])) || text[unit_at] == '.')) {
    ++unit_at;
  }
  const std::string number(text.substr(0, unit_at));
  const std::string_view unit = text.substr(unit_at);
  double value = 0;
  std::size_t used = 0;
  try {
    value = std::stod(number, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  double scale = 0;  // seconds per unit
  if (unit.empty() || unit == "s") {
    scale = 1;
  } else if (unit == "ms") {
    scale = 1e-3;
  } else if (unit == "us") {
    scale = 1e-6;
  } else if (unit == "ns") {
    scale = 1e-9;
  } else if (unit == "m" || unit == "min") {
    scale = 60;
  } else if (unit == "h") {
    scale = 3600;
  }
  if (number.empty() || used != number.size() || scale == 0 || !std::isfinite(value) ||
      value * scale > 1e9) {
    throw LockError(make_error_code(errc::invalid_spec),
                    "invalid duration (use e.g. 250ms, 1.5s, 2m, or seconds)", text);
  }
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(value * scale));
}

std::string LockSpec::to_string() const {
  std::string s = kind;
  s.append(url ? "://" : ":").append(target);
  char sep = '?';
  for (const auto& [k, v] : options) {
    s.append(1, sep).append(k).append("=").append(v);
    sep = '&';
  }
  return s;
}

LockSpec parse_lock_spec(std::string_view spec) {
  if (spec.empty()) bad_spec(spec, "empty");
  LockSpec out;
  std::string_view rest = spec;
  if (const auto scheme_end = spec.find("://"); scheme_end != std::string_view::npos) {
    const std::string_view scheme = spec.substr(0, scheme_end);
    if (find_scheme(scheme) != nullptr) {
      // The scheme's opener validates the rest; here it is only split up.
      out.kind = std::string(scheme);
      out.url = true;
      rest = spec.substr(scheme_end + 3);
      const auto query = rest.find('?');
      out.target = std::string(rest.substr(0, query));
      if (query != std::string_view::npos) {
        parse_query(spec, rest.substr(query + 1), out.options, [](const std::string&) {});
      }
      return out;
    }
    if (contains(kLaterSchemes, scheme)) {
      bad_spec(spec, cat("'", scheme, "' locks are not in this build yet"), errc::unsupported);
    }
    bad_spec(spec, cat("unknown scheme '", scheme, "'"));
  }
  const auto colon = spec.find(':');
  std::string_view kind = "flock";
  if (colon == 0) {
    bad_spec(spec,
             "nothing before ':'; write KIND:PATH (e.g. flock:/tmp/x.lock), or ./:NAME for a file "
             "whose name starts with ':'");
  }
  if (colon != std::string_view::npos) {
    const std::string_view prefix = spec.substr(0, colon);
    const bool word = !prefix.empty() && prefix.find('/') == std::string_view::npos;
    if (contains(kFileKinds, prefix) || contains(kProtocolKinds, prefix) || prefix == "sem") {
      kind = prefix;
      rest = spec.substr(colon + 1);
    } else if (word && colon + 1 < spec.size() && spec[colon + 1] == '/') {
      bad_spec(spec,
               cat("unknown lock kind '", prefix,
                   "'; known: flock, fcntl, ofd, sem, link, mkdir, pidfile, dotlock, auto, or a "
                   "bare path"));
    }
  }
  out.kind = kind == "posix" ? "fcntl" : std::string(kind);
  const auto query = rest.find('?');
  out.target = std::string(rest.substr(0, query));
  if (out.target.empty()) bad_spec(spec, "no path");
  if (query != std::string_view::npos) {
    parse_query(spec, rest.substr(query + 1), out.options, [&](const std::string& key) {
      if (!option_allowed(out.kind, key)) {
        bad_spec(spec, cat("unknown option '", key, "' for ", out.kind,
                           ": (known: ", allowed_options(out.kind), ")"));
      }
    });
  }
  if (out.kind == "sem") {
    // The slot files are DIR/NAME.NN.lock: without a NAME they would be DIR/.NN.lock.
    const std::string name = std::filesystem::path(out.target).filename().string();
    if (name.empty() || name == "." || name == "..") {
      bad_spec(spec, cat("'", out.target,
                         "' has no semaphore name; write sem:DIR/NAME?max=N (slot files "
                         "DIR/NAME.00.lock, DIR/NAME.01.lock, ...)"));
    }
    if (!out.options.count("max")) bad_spec(spec, "sem: needs ?max=N");
  }
  // Validate values now, so that errors surface at parse time.
  for (const auto& [key, value] : out.options) {
    if (key == "timeout" || key == "stale_age" || key == "lifetime" || key == "slop" ||
        key == "stale_grace") {
      try {
        parse_duration(value);
      } catch (const LockError&) {
        bad_spec(spec,
                 cat(key, " must be a duration such as 250ms, 1.5s or 2m, not '", value, "'"));
      }
    } else if (key == "perms") {
      const unsigned mode = parse_unsigned(spec, key, value, 8);
      if (mode > 07777) {
        bad_spec(spec, cat("perms=", value, " is not a file mode; give permission bits 0..0777"));
      }
      if (mode > 0777) {
        // A lock file is opened and written by whoever locks: setuid/setgid on it is a hazard,
        // and sticky means nothing on a file.
        bad_spec(spec, cat("perms=", value,
                           " sets setuid, setgid or sticky bits, which a lock file must not "
                           "have; give permission bits 0..0777"));
      }
    } else if (key == "stale") {
      if (value != "auto" && value != "off") {
        bad_spec(spec, cat("stale must be 'auto' or 'off', not '", value, "'"));
      }
    } else if (key == "max") {
      const unsigned m = parse_unsigned(spec, key, value, 10);
      if (m == 0 || m > 1000) bad_spec(spec, "max must be 1..1000");
    } else {
      parse_flag(spec, key, value);
    }
  }
  if (out.options.count("stale") && out.options.count("break_stale")) {
    bad_spec(spec, "give stale=auto|off or the old break_stale=1|0, not both");
  }
  if (out.kind == "sem" && out.options.count("shared") &&
      parse_flag(spec, "shared", out.options.at("shared"))) {
    bad_spec(spec, "a semaphore has no shared mode");
  }
  return out;
}

std::unique_ptr<Lockable> open_lock(const LockSpec& unchecked) {
  if (unchecked.url) {
    const SchemeOpener opener = find_scheme(unchecked.kind);
    if (opener == nullptr) return open_lock(std::string_view(unchecked.to_string()));
    return opener(unchecked.to_string());
  }
  // A LockSpec may be built by hand: check it as if it had been parsed (kind, options, values).
  const LockSpec spec = parse_lock_spec(unchecked.to_string());
  const std::string text = spec.to_string();
  auto flag = [&](const char* key) {
    const auto it = spec.options.find(key);
    return it != spec.options.end() && parse_flag(text, key, it->second);
  };
  std::optional<Clock::duration> timeout;
  if (const auto it = spec.options.find("timeout"); it != spec.options.end()) {
    timeout = parse_duration(it->second);
  }
  unsigned perms = 0644;
  if (const auto it = spec.options.find("perms"); it != spec.options.end()) {
    perms = parse_unsigned(text, "perms", it->second, 8);
  }
  if (spec.kind == "sem") {
    const std::filesystem::path p(spec.target);
    SemaphoreOptions o;
    o.timeout = timeout;
    o.fail_when_locked = flag("fail_when_locked");
    o.permissions = perms;
    o.follow_symlinks = flag("follow_symlinks");
    const unsigned max = parse_unsigned(text, "max", spec.options.at("max"), 10);
    std::filesystem::path dir = p.parent_path();
    if (dir.empty()) dir = ".";
    return std::make_unique<BoundedSemaphore>(max, p.filename().string(), dir, o);
  }
  // Milliseconds, rounded up: flufl.lock keeps the expiry as a float file time.
  auto millis = [&](const char* key, std::chrono::milliseconds fallback) {
    const auto it = spec.options.find(key);
    if (it == spec.options.end()) return fallback;
    return std::chrono::ceil<std::chrono::milliseconds>(parse_duration(it->second));
  };
  if (spec.kind == "auto") {
    AutoLockOptions o;
    o.mode = flag("shared") ? LockMode::shared : LockMode::exclusive;
    o.timeout = timeout;
    o.fail_when_locked = flag("fail_when_locked");
    o.permissions = perms;
    o.follow_symlinks = flag("follow_symlinks");
    o.link_lifetime = millis("lifetime", o.link_lifetime);
    if (o.link_lifetime.count() <= 0) bad_spec(text, "lifetime must be at least 1ms");
    if (spec.options.count("check_mount") != 0) o.check_mount = flag("check_mount");
    return std::make_unique<AutoLock>(spec.target, o);
  }
  if (spec.kind == "link") {
    LinkLockOptions o;
    o.timeout = timeout;
    o.fail_when_locked = flag("fail_when_locked");
    o.permissions = perms;
    o.lifetime = millis("lifetime", o.lifetime);
    o.clock_slop = millis("slop", o.clock_slop);
    if (o.lifetime.count() <= 0) bad_spec(text, "lifetime must be at least 1ms");
    return std::make_unique<LinkLock>(spec.target, o);
  }
  // mkdir: and pidfile: take over a dead holder's lock unless stale=off (or break_stale=0).
  auto stale = [&] {
    if (const auto it = spec.options.find("break_stale"); it != spec.options.end()) {
      return flag("break_stale") ? StalePolicy::automatic : StalePolicy::off;
    }
    const auto it = spec.options.find("stale");
    return it != spec.options.end() && it->second == "off" ? StalePolicy::off
                                                           : StalePolicy::automatic;
  };
  auto grace = [&](std::chrono::milliseconds fallback) {
    const auto it = spec.options.find("stale_grace");
    if (it == spec.options.end()) return fallback;
    return std::chrono::ceil<std::chrono::milliseconds>(parse_duration(it->second));
  };
  if (spec.kind == "mkdir") {
    MkdirLockOptions o;
    o.timeout = timeout;
    o.fail_when_locked = flag("fail_when_locked");
    if (spec.options.count("perms")) o.permissions = perms;
    o.stale = stale();
    o.stale_grace = grace(o.stale_grace);
    return std::make_unique<MkdirLock>(spec.target, o);
  }
  if (spec.kind == "pidfile") {
    PidLockFileOptions o;
    o.timeout = timeout;
    o.fail_when_locked = flag("fail_when_locked");
    o.stale = stale();
    o.stale_grace = grace(o.stale_grace);
    o.permissions = perms;
    return std::make_unique<PidLockFile>(spec.target, o);
  }
  if (spec.kind == "dotlock") {
    DotLockOptions o;
    o.timeout = timeout;
    o.fail_when_locked = flag("fail_when_locked");
    o.permissions = perms;
    if (const auto it = spec.options.find("stale_age"); it != spec.options.end()) {
      const auto age = std::chrono::duration_cast<std::chrono::seconds>(parse_duration(it->second));
      o.stale_age = age.count() > 0 ? std::optional<std::chrono::seconds>(age) : std::nullopt;
    }
    return std::make_unique<DotLock>(spec.target, o);
  }
  LockOptions o;
  o.backend = spec.kind == "fcntl" ? Backend::posix
              : spec.kind == "ofd" ? Backend::ofd
                                   : Backend::flock;
  o.mode = flag("shared") ? LockMode::shared : LockMode::exclusive;
  o.timeout = timeout;
  o.fail_when_locked = flag("fail_when_locked");
  o.permissions = perms;
  o.follow_symlinks = flag("follow_symlinks");
  o.keep_open = flag("keep_open");
  return std::make_unique<FileLock>(spec.target, o);
}

std::unique_ptr<Lockable> open_lock(std::string_view spec) {
  if (const auto scheme_end = spec.find("://"); scheme_end != std::string_view::npos) {
    if (const SchemeOpener opener = find_scheme(spec.substr(0, scheme_end))) return opener(spec);
  }
  return open_lock(parse_lock_spec(spec));
}

}  // namespace locksmith
