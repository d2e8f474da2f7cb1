// The workload registry, the leftovers of a run, self-checking content, and the worker context.
#include <fcntl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

#include "content.hpp"
#include "locksmith/unique_fd.hpp"
#include "workload.hpp"

namespace locksmith::harness::detail {

std::unique_ptr<Workload> make_lock_workload();
std::unique_ptr<Workload> make_atomic_workload(bool broken);
std::unique_ptr<Workload> make_filestore_workload(bool broken);
std::unique_ptr<Workload> make_fenced_workload(bool broken);

std::unique_ptr<Workload> make_workload(std::string_view spec) {
  struct Entry {
    std::string_view prefix;
    std::unique_ptr<Workload> (*make)(bool);
    bool broken;
  };
  static constexpr Entry kWorkloads[] = {
      {"atomic:", make_atomic_workload, false},
      {"broken:atomic:", make_atomic_workload, true},
      {"filestore:", make_filestore_workload, false},
      {"broken:filestore:", make_filestore_workload, true},
      {"fenced:", make_fenced_workload, false},
      {"broken:fenced:", make_fenced_workload, true},
  };
  for (const auto& w : kWorkloads) {
    if (spec.substr(0, w.prefix.size()) == w.prefix) return w.make(w.broken);
  }
  return make_lock_workload();
}

// --- Leftovers ----------------------------------------------------------------------------------

void Leftovers::snapshot(const std::filesystem::path& dir) {
  dir_ = dir;
  before_.clear();
  taken_ = true;
  std::error_code ec;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    before_.insert(it->path().filename().string());
  }
}

void Leftovers::remove_new(const std::vector<std::string>& prefixes) const noexcept {
  if (!taken_) return;
  try {
    std::error_code ec;
    std::vector<std::filesystem::path> made;
    for (std::filesystem::directory_iterator it(dir_, ec), end; !ec && it != end;
         it.increment(ec)) {
      const std::string name = it->path().filename().string();
      if (before_.count(name)) continue;
      for (const auto& p : prefixes) {
        if (!p.empty() && name.rfind(p, 0) == 0) {
          made.push_back(it->path());
          break;
        }
      }
    }
    for (const auto& p : made) std::filesystem::remove_all(p, ec);
  } catch (...) {
    // Out of memory while tidying up: what is left is only untidy.
  }
}

// --- Self-checking content ----------------------------------------------------------------------

namespace {
constexpr std::string_view kMagic = "locksmith-atomic";
constexpr std::size_t kPayload = 16384;  // several pages: a torn write is visible
}  // namespace

std::string versioned_content(std::int64_t version) {
  std::string out(kMagic);
  out.append(" ").append(std::to_string(version)).append(" ");
  out.append(std::to_string(kPayload)).append("\n");
  for (std::size_t i = 0; i < kPayload; ++i) {
    out.push_back(static_cast<char>('a' + (static_cast<std::uint64_t>(version) * 31 + i) % 26));
  }
  out.push_back('\n');
  return out;
}

std::optional<std::int64_t> parse_versioned(const std::string& content) {
  long long version = -1;
  unsigned long length = 0;
  if (content.compare(0, kMagic.size(), kMagic) != 0) return std::nullopt;
  if (std::sscanf(content.c_str() + kMagic.size(), " %lld %lu", &version, &length) != 2) {
    return std::nullopt;
  }
  if (length != kPayload || content != versioned_content(version)) return std::nullopt;
  return version;
}

bool read_whole(const std::string& path, std::string& out) {
  out.clear();
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT) return false;
    fail("cannot open", path, errno);
  }
  char buf[8192];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail("cannot read", path, errno);
    if (n == 0) return true;
    out.append(buf, static_cast<std::size_t>(n));
  }
}

std::int64_t unique_version(std::uint32_t worker, std::uint32_t op) {
  return (static_cast<std::int64_t>(worker) + 1) * (std::int64_t{1} << 32) + op;
}

// --- Shared state and the worker context --------------------------------------------------------

[[noreturn]] void fail(const std::string& what, const std::filesystem::path& path, int err) {
  throw std::system_error(err, std::generic_category(), what + " '" + path.string() + "'");
}

void sleep_ns(std::int64_t ns) {
  if (ns <= 0) return;
  timespec ts{static_cast<time_t>(ns / 1000000000), static_cast<long>(ns % 1000000000)};
  while (::nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

SharedMap::SharedMap(const std::filesystem::path& path, bool create) {
  const int flags = O_RDWR | O_CLOEXEC | O_NOFOLLOW | (create ? O_CREAT | O_EXCL : 0);
  UniqueFd fd(::open(path.c_str(), flags, 0600));
  if (!fd) fail("cannot open shared state", path, errno);
  if (create) {
    if (::ftruncate(fd.get(), sizeof(SharedState)) != 0)
      fail("cannot size shared state", path, errno);
    if (const int err = ::posix_fallocate(fd.get(), 0, sizeof(SharedState));
        err != 0 && err != EOPNOTSUPP) {
      fail("cannot allocate shared state", path, err);
    }
  }
  void* p = ::mmap(nullptr, sizeof(SharedState), PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  if (p == MAP_FAILED) fail("cannot map shared state", path, errno);
  state_ = create ? new (p) SharedState() : static_cast<SharedState*>(p);
}

SharedMap::~SharedMap() { ::munmap(state_, sizeof(SharedState)); }

// The duration is the controller's to judge (it sets `stop`): it counts from when every worker
// was ready, which a worker cannot know; a worker that timed itself from the controller's start
// could spend the whole run starting up and never try (seen under ASan on a loaded machine).
bool WorkerContext::over(std::uint64_t done) const {
  if (shared.stop.load(std::memory_order_relaxed) != 0) return true;
  return cfg.iterations > 0 && done >= cfg.iterations;
}

Event WorkerContext::event(std::uint32_t op, EventType type) const {
  Event e;
  e.worker = id;
  e.op = op;
  e.host = cfg.host;
  e.type = type;
  return e;
}

std::chrono::steady_clock::time_point WorkerContext::deadline() const {
  return cfg.timeout_ns <= 0 ? Clock::time_point::min()
                             : Clock::now() + std::chrono::nanoseconds(cfg.timeout_ns);
}

int exit_code_for(std::error_code ec) noexcept {
  if (ec.category() == std::generic_category()) {
    switch (ec.value()) {
      case ENOSPC:
      case EDQUOT:
      case EIO:
      case EROFS:
      case EMFILE:
      case ENFILE:
      case ENOMEM:
        return kWorkerEnvironment;
      default:
        break;
    }
  }
  return kWorkerLockFailed;
}

EventType outcome_of(std::error_code ec) noexcept {
  return ec == errc::busy      ? EventType::busy
         : ec == errc::timeout ? EventType::timeout
                               : EventType::fail;
}

}  // namespace locksmith::harness::detail
