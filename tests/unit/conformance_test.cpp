// The conformance suite (tests/support/conformance.hpp) for every lock type of locksmith::core:
// file locks on each backend, their RLock / temporary / pid-file variants, semaphores, locks opened
// from spec strings, and the link and lockfile families. The Redis locks run the same suite in
// tests/redis (they need a redis-server).
#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "conformance.hpp"
#include "locksmith/locksmith.hpp"

namespace conformance {

LockOptions file_options(Backend b, const Policy& p, LockOptions o = {}) {
  o.backend = b;
  o.timeout = p.timeout;
  o.fail_when_locked = p.fail_when_locked;
  return o;
}

// Each lock type is a traits struct (what the fields mean: tests/support/conformance.hpp).
template <Backend B>
struct FileLockOn {
  static constexpr unsigned kCapacity = 1;
  static constexpr bool kProcessScoped = B == Backend::posix;
  static constexpr bool kShared = true;
  static std::string kind() { return B == Backend::posix ? "fcntl" : std::string(to_string(B)); }
  static std::string target(const fs::path& dir, const std::string& name) {
    return (dir / name).string();
  }
  static std::unique_ptr<Lockable> make(const fs::path& dir, const std::string& name,
                                        const Policy& p = {}) {
    return std::make_unique<FileLock>(dir / name, file_options(B, p));
  }
};

struct RLock_ : FileLockOn<Backend::flock> {
  static constexpr bool kReentrant = true;
  static std::unique_ptr<Lockable> make(const fs::path& dir, const std::string& name,
                                        const Policy& p = {}) {
    return std::make_unique<RLock>(dir / name, file_options(Backend::flock, p));
  }
};

struct TemporaryFileLock_ : FileLockOn<Backend::flock> {
  static std::unique_ptr<Lockable> make(const fs::path& dir, const std::string& name,
                                        const Policy& p = {}) {
    return std::make_unique<TemporaryFileLock>(
        dir / name, file_options(Backend::flock, p, TemporaryFileLock::default_options()));
  }
};

struct PidFileLock_ : FileLockOn<Backend::flock> {
  static constexpr bool kShared = false;
  static std::string kind() { return "pidfile"; }
  static std::unique_ptr<Lockable> make(const fs::path& dir, const std::string& name,
                                        const Policy& p = {}) {
    return std::make_unique<PidFileLock>(
        dir / name, file_options(Backend::flock, p, TemporaryFileLock::default_options()));
  }
};

template <unsigned Max>
struct SemaphoreOf {
  static constexpr unsigned kCapacity = Max;
  static constexpr bool kProcessScoped = false;
  static constexpr bool kShared = false;
  static std::string kind() { return "sem"; }
  static std::string target(const fs::path& dir, const std::string& name) {
    return (dir / name).string();
  }
  static std::unique_ptr<Lockable> make(const fs::path& dir, const std::string& name,
                                        const Policy& p = {}) {
    SemaphoreOptions o;
    o.timeout = p.timeout;
    o.fail_when_locked = p.fail_when_locked;
    return std::make_unique<BoundedSemaphore>(Max, name, dir, o);
  }
};

// Locks opened from a spec string: Prefix is "flock:", "fcntl:", "ofd:", "sem:" or "" (bare).
template <class Prefix>
struct SpecLock {
  static constexpr bool kSem = Prefix::kText == std::string_view("sem:");
  static constexpr unsigned kCapacity = 1;
  static constexpr bool kProcessScoped = Prefix::kText == std::string_view("fcntl:");
  static constexpr bool kShared = !kSem;
  static std::string kind() { return Prefix::kKind; }
  static std::string target(const fs::path& dir, const std::string& name) {
    return (dir / name).string();
  }
  static std::string spec(const fs::path& dir, const std::string& name, const Policy& p) {
    std::string s = std::string(Prefix::kText) + (dir / name).string();
    std::vector<std::string> opts;
    if (kSem) opts.emplace_back("max=1");
    if (p.timeout) {
      opts.push_back(
          "timeout=" +
          std::to_string(
              std::chrono::duration_cast<std::chrono::milliseconds>(*p.timeout).count()) +
          "ms");
    }
    if (p.fail_when_locked) opts.emplace_back("fail_when_locked=1");
    for (std::size_t i = 0; i < opts.size(); ++i) s += (i == 0 ? "?" : "&") + opts[i];
    return s;
  }
  static std::unique_ptr<Lockable> make(const fs::path& dir, const std::string& name,
                                        const Policy& p = {}) {
    return open_lock(spec(dir, name, p));
  }
};

struct FlockPrefix {
  static constexpr std::string_view kText = "flock:";
  static constexpr const char* kKind = "flock";
};
struct FcntlPrefix {
  static constexpr std::string_view kText = "fcntl:";
  static constexpr const char* kKind = "fcntl";
};
struct OfdPrefix {
  static constexpr std::string_view kText = "ofd:";
  static constexpr const char* kKind = "ofd";
};
struct SemPrefix {
  static constexpr std::string_view kText = "sem:";
  static constexpr const char* kKind = "sem";
};
struct AutoPrefix {
  static constexpr std::string_view kText = "auto:";
  static constexpr const char* kKind = "auto";
};
struct BarePrefix {
  static constexpr std::string_view kText = "";
  static constexpr const char* kKind = "flock";
};

struct FileLockFlock : FileLockOn<Backend::flock> {};
struct FileLockPosix : FileLockOn<Backend::posix> {};
struct FileLockOfd : FileLockOn<Backend::ofd> {};
struct Semaphore1 : SemaphoreOf<1> {};
struct Semaphore3 : SemaphoreOf<3> {};
struct SpecFlock : SpecLock<FlockPrefix> {};
struct SpecFcntl : SpecLock<FcntlPrefix> {};
struct SpecOfd : SpecLock<OfdPrefix> {};
struct SpecSem : SpecLock<SemPrefix> {};
struct SpecBarePath : SpecLock<BarePrefix> {};
struct SpecAuto : SpecLock<AutoPrefix> {};

// The families without kernel waiters or shared mode: a claim file linked into place (flufl.lock),
// a directory (lockfile's MkdirLockFile), an O_EXCL pid file (lockfile's PIDLockFile) and a
// liblockfile dot lock. Shared mode is refused with errc::unsupported; a waiter polls.
template <class L, class Options>
struct PathLockOf {
  static constexpr unsigned kCapacity = 1;
  static constexpr bool kProcessScoped = false;
  static constexpr bool kShared = false;
  static constexpr bool kKernelWaiters = false;
  static std::error_code shared_refusal() { return make_error_code(errc::unsupported); }
  static std::unique_ptr<Lockable> make(const fs::path& dir, const std::string& name,
                                        const Policy& p = {}) {
    Options o;
    o.timeout = p.timeout;
    o.fail_when_locked = p.fail_when_locked;
    return std::make_unique<L>(dir / name, o);
  }
};

struct LinkLock_ : PathLockOf<LinkLock, LinkLockOptions> {
  static std::string kind() { return "link"; }
  static std::string target(const fs::path& dir, const std::string& name) {
    return (dir / name).string();
  }
};
struct MkdirLock_ : PathLockOf<MkdirLock, MkdirLockOptions> {
  static std::string kind() { return "mkdir"; }
  static std::string target(const fs::path& dir, const std::string& name) {
    return (dir / name).string() + ".lock";
  }
};
struct PidLockFile_ : PathLockOf<PidLockFile, PidLockFileOptions> {
  static std::string kind() { return "pidfile"; }
  static std::string target(const fs::path& dir, const std::string& name) {
    return (dir / name).string();
  }
};
struct DotLock_ : PathLockOf<DotLock, DotLockOptions> {
  static std::string kind() { return "dotlock"; }
  static std::string target(const fs::path& dir, const std::string& name) {
    return (dir / name).string() + ".lock";
  }
};

using LockTypes =
    ::testing::Types<FileLockFlock, FileLockPosix, FileLockOfd, RLock_, TemporaryFileLock_,
                     PidFileLock_, Semaphore1, Semaphore3, SpecFlock, SpecFcntl, SpecOfd, SpecSem,
                     SpecBarePath, SpecAuto, LinkLock_, MkdirLock_, PidLockFile_, DotLock_>;
// GoogleTest names these "Conformance/Conformance/N.<Test>"; ctest (which names a typed test by
// its prefix and type) keeps "Conformance.<Test><conformance::<Type>>", the names they had before
// the bodies moved to tests/support.
INSTANTIATE_TYPED_TEST_SUITE_P(Conformance, Conformance, LockTypes);

}  // namespace conformance
