// Deliberately broken locks: the checkers are trusted only after they catch these.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <thread>

#include "locksmith/file_lock.hpp"
#include "locksmith/harness/engine.hpp"
#include "locksmith/spec.hpp"

namespace locksmith::harness {
namespace {

constexpr std::string_view kBroken = "broken:";

// Says it locked without locking anything.
class NoopLock final : public Lockable {
 public:
  explicit NoopLock(std::string path) : path_(std::move(path)) {}
  std::error_code acquire(LockMode mode, Clock::time_point) noexcept override {
    if (held_) return std::make_error_code(std::errc::resource_deadlock_would_occur);
    held_ = true;
    mode_ = mode;
    return {};
  }
  std::error_code release() noexcept override {
    if (!held_) return make_error_code(errc::not_locked);
    held_ = false;
    return {};
  }
  LockInfo describe() const override {
    LockInfo i;
    i.kind = "broken-noop";
    i.mechanism = "none";
    i.target = path_;
    i.held = held_;
    if (held_) i.mode = mode_;
    return i;
  }

 private:
  std::string path_;
  bool held_ = false;
  LockMode mode_ = LockMode::exclusive;
};

// The classic race: check that the lock file is absent, then create it without O_EXCL.
class CheckThenCreateLock final : public Lockable {
 public:
  explicit CheckThenCreateLock(std::string path) : path_(std::move(path)) {}
  std::error_code acquire(LockMode, Clock::time_point deadline) noexcept override {
    if (held_) return std::make_error_code(std::errc::resource_deadlock_would_occur);
    for (;;) {
      struct stat st {};
      if (::stat(path_.c_str(), &st) != 0 && errno == ENOENT) {
        std::this_thread::yield();  // widen the window a real program has anyway
        const int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0) return {errno, std::generic_category()};
        ::close(fd);
        held_ = true;
        return {};
      }
      if (Clock::now() >= deadline) {
        return make_error_code(deadline == Clock::time_point::min() ? errc::busy : errc::timeout);
      }
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
  }
  std::error_code release() noexcept override {
    if (!held_) return make_error_code(errc::not_locked);
    held_ = false;
    if (::unlink(path_.c_str()) != 0) return {errno, std::generic_category()};
    return {};
  }
  LockInfo describe() const override {
    LockInfo i;
    i.kind = "broken-create";
    i.mechanism = "stat+open without O_EXCL";
    i.target = path_;
    i.held = held_;
    if (held_) i.mode = LockMode::exclusive;
    return i;
  }
  bool supports_shared() const noexcept override { return false; }

 private:
  std::string path_;
  bool held_ = false;
};

}  // namespace

Scenario scenario_of(std::string_view spec) {
  constexpr std::pair<std::string_view, ScenarioKind> kPrefixes[] = {
      {"atomic:", ScenarioKind::atomic},
      {"broken:atomic:", ScenarioKind::broken_atomic},
      {"filestore:", ScenarioKind::filestore},
      {"broken:filestore:", ScenarioKind::broken_filestore},
      {"fenced:", ScenarioKind::fenced},
      {"broken:fenced:", ScenarioKind::broken_fenced},
  };
  for (const auto& [prefix, kind] : kPrefixes) {
    if (spec.substr(0, prefix.size()) == prefix) {
      return {kind, std::string(spec.substr(prefix.size()))};
    }
  }
  return {};
}

const char* scenario_kind_name(ScenarioKind k) {
  switch (k) {
    case ScenarioKind::atomic:
      return "atomic-write";
    case ScenarioKind::broken_atomic:
      return "broken-atomic";
    case ScenarioKind::filestore:
      return "filestore";
    case ScenarioKind::broken_filestore:
      return "broken-filestore";
    case ScenarioKind::fenced:
      return "fenced";
    case ScenarioKind::broken_fenced:
      return "broken-fenced";
    case ScenarioKind::none:
      break;
  }
  return "";
}

std::string spec_kind(const std::string& spec) {
  register_schemes();
  if (const Scenario s = scenario_of(spec); s.kind != ScenarioKind::none) {
    if (s.path.empty()) {
      throw LockError(make_error_code(errc::invalid_spec), "invalid scenario spec (no path)", spec);
    }
    return scenario_kind_name(s.kind);
  }
  if (spec.rfind(kBroken, 0) == 0) {
    const auto rest = spec.substr(kBroken.size());
    return "broken-" + rest.substr(0, rest.find(':'));
  }
  return parse_lock_spec(spec).kind;
}

std::unique_ptr<Lockable> open_harness_lock(const std::string& spec) {
  register_schemes();
  if (spec.rfind(kBroken, 0) != 0) return open_lock(spec);
  const std::string rest = spec.substr(kBroken.size());
  const auto colon = rest.find(':');
  const std::string what = rest.substr(0, colon);
  const std::string path = colon == std::string::npos ? "" : rest.substr(colon + 1);
  if (path.empty()) {
    throw LockError(make_error_code(errc::invalid_spec), "invalid lock spec (no path)", spec);
  }
  if (what == "noop") return std::make_unique<NoopLock>(path);
  if (what == "create") return std::make_unique<CheckThenCreateLock>(path);
  if (what == "fcntl-threads") {
    LockOptions o;
    o.backend = Backend::posix;
    return std::make_unique<FileLock>(path, o);
  }
  throw LockError(make_error_code(errc::invalid_spec),
                  "invalid lock spec (unknown broken lock '" + what +
                      "'; known: broken:noop:, broken:create:, broken:fcntl-threads:)",
                  spec);
}

}  // namespace locksmith::harness
