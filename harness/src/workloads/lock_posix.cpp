// The lock workload: every worker loops acquire -> critical section -> release on one lock spec.
//
// Clock-free evidence: on entering its critical section a worker publishes its mode in its slot
// and then reads every other slot (sequentially consistent, Dekker style: of two concurrent
// entrants at least one sees the other). Inside an exclusive section it works the guarded file:
// reads the counter, writes its own owner witness, holds, checks the witness is still its own,
// and writes counter+1. A failing read or write of the guarded file is an environment error
// (the worker stops, naming the file and the OS error), never scored as a violation.
//
// A lock that can be lost (link, Redis, ...) is kept alive by a KeepAlive while held when the
// hold could outlast its keep-alive interval or the pause nemesis runs; a holder told of the
// loss records a `lost` event and stops writing (no counter increment).
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <optional>
#include <random>
#include <thread>

#include "locksmith/keep_alive.hpp"
#include "locksmith/spec.hpp"
#include "locksmith/unique_fd.hpp"
#include "workload.hpp"

namespace locksmith::harness::detail {
namespace {

constexpr std::size_t kGuardSize = 64;
constexpr long kNfsSuperMagic = 0x6969;  // NFS_SUPER_MAGIC

struct GuardContent {
  std::int64_t counter = 0;
  std::uint32_t worker = 0;
  std::uint32_t op = 0;
};

// The guarded file holds "COUNTER WORKER OP" padded with spaces to kGuardSize bytes. Parsed and
// formatted by hand: sscanf/snprintf cost more than the lock call they sit next to.
bool parse_guard(const char* buf, std::size_t n, GuardContent& g) {
  const char* p = buf;
  const char* const end = buf + n;
  auto field = [&](auto& out) {
    while (p < end && *p == ' ') ++p;
    const auto [next, err] = std::from_chars(p, end, out);
    if (err != std::errc()) return false;
    p = next;
    return true;
  };
  GuardContent c;
  if (!field(c.counter) || !field(c.worker) || !field(c.op)) return false;
  g = c;
  return true;
}

class GuardFile {
 public:
  GuardFile() = default;
  explicit GuardFile(std::string path) : path_(std::move(path)) {
    fd_.reset(::open(path_.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW));
    if (!fd_) fail("cannot open guard file", path_, errno);
    // NFS clients cache file data across lock/unlock of another file: reading the guarded file
    // through the page cache shows stale counters and hides other clients' witnesses. O_DIRECT
    // goes to the server every time (measured coherent on NFSv3 and v4.2; docs/NFS.md).
    struct statfs fs {};
    if (::fstatfs(fd_.get(), &fs) == 0 && static_cast<long>(fs.f_type) == kNfsSuperMagic) {
      fd_.reset(::open(path_.c_str(), O_RDWR | O_CLOEXEC | O_DIRECT));
      if (!fd_) fail("cannot open guard file with O_DIRECT", path_, errno);
    }
  }
  bool valid() const { return fd_.valid(); }

  // False when the content is not a guard record (someone else's torn write shows as that).
  bool read(GuardContent& g) const {
    alignas(4096) static thread_local char buf[4096];
    const ssize_t n = ::pread(fd_.get(), buf, kGuardSize, 0);
    if (n < 0) fail("cannot read guard file", path_, errno);
    return n > 0 && parse_guard(buf, static_cast<std::size_t>(n), g);
  }

  void write(const GuardContent& g) const {
    alignas(4096) static thread_local char buf[4096];
    std::memset(buf, ' ', kGuardSize);
    char* p = buf;
    char* const end = buf + kGuardSize - 1;  // the last byte is the newline
    p = std::to_chars(p, end, g.counter).ptr;
    p = std::to_chars(p + 1, end, g.worker).ptr;
    std::to_chars(p + 1, end, g.op);
    buf[kGuardSize - 1] = '\n';
    const ssize_t n = ::pwrite(fd_.get(), buf, kGuardSize, 0);
    if (n != static_cast<ssize_t>(kGuardSize))
      fail("cannot write guard file", path_, n < 0 ? errno : EIO);
  }

  static void create(const std::string& path) {
    UniqueFd g(::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644));
    if (!g) {
      const int err = errno;
      if (err == EEXIST) {
        throw std::runtime_error("guard file '" + path +
                                 "' exists: another stress run on this lock is running, or one "
                                 "was killed; remove the file if no run is");
      }
      fail("cannot create guard file", path, err);
    }
    GuardFile f;
    f.path_ = path;
    f.fd_ = std::move(g);
    f.write({0, 0, 0});
  }

 private:
  std::string path_;
  UniqueFd fd_;
};

std::uint32_t max_holders_of(const std::string& spec) {
  if (spec.rfind("broken:", 0) == 0) return 1;
  const LockSpec s = parse_lock_spec(spec);
  if (s.kind == "sem") return static_cast<std::uint32_t>(std::stoul(s.options.at("max")));
  return 1;
}

class LockWorkload final : public Workload {
 public:
  const char* name() const noexcept override { return "lock"; }

  void prepare(RunConfig& cfg, const StressOptions& o,
               const std::filesystem::path& run_dir) override {
    cfg.kind = spec_kind(o.spec);
    cfg.max_holders = max_holders_of(o.spec);
    auto probe = open_harness_lock(o.spec);  // validates the spec before anything starts
    if (o.shared_ratio > 0 && !probe->supports_shared()) {
      throw std::invalid_argument("'" + o.spec + "' has no shared mode");
    }
    const std::string target = probe->describe().target;
    if (const auto bound = probe->expiry_bound()) {
      cfg.expiry_bound_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(*bound).count();
    }
    // Keep-alive where a hold could outlast a renewal interval, or the pause nemesis runs.
    const auto interval = probe->keep_alive_interval();
    const bool pausing =
        std::find(cfg.nemesis.begin(), cfg.nemesis.end(), "pause") != cfg.nemesis.end();
    cfg.keep_alive = interval > Clock::duration::zero() &&
                     (pausing || std::chrono::nanoseconds(cfg.hold_ns) * 2 >= interval);
    cfg.counter = cfg.max_holders == 1;
    // The guarded file sits next to a file lock; a lock that is not a file (redis://...) gets it
    // in the run directory, or in the rendezvous directory that every host shares.
    const bool file_lock = o.spec.find("://") == std::string::npos;
    const bool multi_host = !o.rendezvous.empty();
    cfg.guard = file_lock    ? target + ".guard"
                : multi_host ? (o.rendezvous / "guard").string()
                             : (run_dir / "guard").string();
    if (!o.peer_spec.empty()) {
      if (spec_kind(o.peer_spec) != cfg.kind) {
        throw std::invalid_argument("the peer spec must be the same kind of lock as the spec");
      }
      cfg.peer_guard = open_harness_lock(o.peer_spec)->describe().target + ".guard";
    }
    if (file_lock) {
      target_ = std::filesystem::path(target);
      leftovers_.snapshot(target_.parent_path().empty() ? "." : target_.parent_path());
    }
    if (cfg.counter && (!multi_host || cfg.host == 0)) {
      GuardFile::create(cfg.guard);
      made_guard_ = cfg.guard;
    }
  }

  int work(WorkerContext& ctx) override;

  void drain(const RunConfig& cfg, Recorder& /*controller*/, StressResult& result) override {
    if (!cfg.counter || cfg.hosts > 1) return;  // other hosts may still be counting
    GuardFile g(cfg.guard);
    GuardContent content;
    if (g.read(content)) result.final_counter = content.counter;
  }

  void cleanup(const RunConfig& /*cfg*/) noexcept override {
    if (!made_guard_.empty()) ::unlink(made_guard_.c_str());
    if (!target_.empty()) {
      // The lock file and what the lock made beside it (link claims, dotlock temporaries, the
      // semaphore's slots, a mkdir lock's directory), when the run created them.
      const std::string base = target_.filename().string();
      leftovers_.remove_new({base, "." + base});
    }
  }

 private:
  std::string made_guard_;
  std::filesystem::path target_;
  Leftovers leftovers_;
};

// Counts the OTHER holders visible in the shared slots (writers, readers).
std::pair<std::uint32_t, std::uint32_t> witnesses(const WorkerContext& ctx) {
  std::uint32_t writers = 0;
  std::uint32_t readers = 0;
  const std::uint32_t n = std::min(ctx.shared.slots_used.load(), kMaxSlots);
  for (std::uint32_t i = 0; i < n; ++i) {
    if (i == ctx.slot) continue;
    const std::uint32_t s = ctx.shared.slots[i].state.load(std::memory_order_seq_cst);
    writers += s == kInExclusive;
    readers += s == kInShared;
  }
  return {writers, readers};
}

// The critical section of a held lock; returns the counter value read (-1 when none) and sets
// `overwritten` / `lost`.
struct Section {
  std::int64_t counter = -1;
  bool overwritten = false;
  bool lost = false;
};

// Told (by the keeper), or the holder's own bound has passed (a holder that was paused knows
// locally that its hold is no longer certain, before the keeper has even renewed).
bool hold_lost(const Lockable& lock, const KeepAlive* keeper) {
  return keeper != nullptr && (keeper->lost() || Clock::now() >= lock.valid_until());
}

void record_lost(const WorkerContext& ctx, std::uint32_t op, Mode m, const Lockable& lock,
                 const KeepAlive& keeper) {
  Event e = ctx.event(op, EventType::lost);
  e.mode = m;
  const auto told = keeper.lost() ? keeper.lost_at() : Clock::now();
  const auto bound = lock.valid_until();
  // Detectable once the hold stopped being certain (the holder's bound ran out); a lock taken
  // away before that (deleted, broken) is unknown to the holder: -1.
  e.value = bound < told && bound > Clock::time_point{}
                ? std::chrono::duration_cast<std::chrono::nanoseconds>(told - bound).count()
                : -1;
  ctx.rec.record(e);
}

Section critical_section(const WorkerContext& ctx, const Lockable& lock, const GuardFile& guard,
                         bool exclusive, std::uint32_t op, const KeepAlive* keeper) {
  Section s;
  if (!guard.valid() || !exclusive) {
    sleep_ns(ctx.cfg.hold_ns);
    s.lost = hold_lost(lock, keeper);
    return s;
  }
  GuardContent g;
  guard.read(g);  // a torn or empty record reads as counter 0; the checks see the repeat
  s.counter = g.counter;
  guard.write({g.counter, ctx.id, op});
  sleep_ns(ctx.cfg.hold_ns);
  GuardContent again;
  if (!guard.read(again) || again.worker != ctx.id || again.op != op) s.overwritten = true;
  // Told the lock is gone: stop writing. The counter increment is the write that would land
  // after another holder got in.
  if (hold_lost(lock, keeper)) {
    s.lost = true;
    s.counter = -1;
    return s;
  }
  guard.write({g.counter + 1, ctx.id, op});
  return s;
}

int LockWorkload::work(WorkerContext& ctx) {
  const RunConfig& cfg = ctx.cfg;
  std::unique_ptr<Lockable> lock = open_harness_lock(ctx.spec);
  GuardFile guard;
  if (cfg.counter) guard = GuardFile(ctx.guard);
  std::mt19937_64 rng(0x9E3779B97F4A7C15ULL ^ ctx.id);
  std::uniform_real_distribution<double> coin(0, 1);
  ctx.me().alive.store(1);
  std::uint64_t done = 0;
  bool gives_fences = true;  // until the first grant shows otherwise
  for (std::uint32_t op = 0; !ctx.over(done); ++op) {
    const bool shared_mode = cfg.shared_ratio > 0 && coin(rng) < cfg.shared_ratio;
    const Mode m = shared_mode ? Mode::shared : Mode::exclusive;
    Event e = ctx.event(op, EventType::invoke);
    e.mode = m;
    e.value = cfg.timeout_ns;
    if (!ctx.rec.record(e)) break;
    ctx.me().attempts.fetch_add(1, std::memory_order_relaxed);
    const std::error_code ec =
        lock->acquire(shared_mode ? LockMode::shared : LockMode::exclusive, ctx.deadline());
    e.time_ns = 0;
    if (ec) {
      e.type = outcome_of(ec);
      e.value = ec.value();
      ctx.rec.record(e);
      // EDEADLK is the kernel refusing a wait that would deadlock (fcntl locks with several
      // waiting processes): an outcome to record, not a reason to stop.
      if (e.type == EventType::fail && ec != std::errc::resource_deadlock_would_occur &&
          !cfg.tolerate_failures) {
        std::fprintf(stderr, "locksmith worker %u: cannot lock '%s': %s\n", ctx.id,
                     lock->describe().target.c_str(), ec.message().c_str());
        return exit_code_for(ec);
      }
      if (e.type == EventType::fail && cfg.tolerate_failures) {
        sleep_ns(1000000);  // the server is down or dropped us: do not spin
      } else if (cfg.timeout_ns <= 0) {
        std::this_thread::yield();
      }
      continue;
    }
    std::optional<KeepAlive> keeper;
    if (cfg.keep_alive) keeper.emplace(*lock);
    // Clock-free evidence: publish ourselves, then look at everyone else.
    ctx.me().state.store(shared_mode ? kInShared : kInExclusive, std::memory_order_seq_cst);
    const auto [writers, readers] = witnesses(ctx);
    e.type = EventType::ok;
    // describe() builds strings: ask it for a fencing token only while the primitive has shown
    // it gives them (a primitive that fences does so on every acquisition).
    e.value = -1;
    if (gives_fences) {
      const auto fence = lock->describe().fence;
      gives_fences = fence.has_value();
      if (fence) e.value = static_cast<std::int64_t>(*fence);
    }
    e.witness_writers = writers;
    e.witness_readers = readers;
    ctx.rec.record(e);
    ctx.me().acquired.fetch_add(1, std::memory_order_relaxed);
    const Section s =
        critical_section(ctx, *lock, guard, !shared_mode, op, keeper ? &*keeper : nullptr);
    ctx.me().state.store(kOut, std::memory_order_seq_cst);
    if (s.lost) record_lost(ctx, op, m, *lock, *keeper);
    if (keeper) keeper->stop();
    e.time_ns = 0;
    e.type = EventType::release;
    e.value = s.counter;
    e.aux = s.overwritten ? 1 : 0;
    e.witness_writers = 0;
    e.witness_readers = 0;
    ctx.rec.record(e);
    const std::error_code rel = lock->release();
    e.time_ns = 0;
    e.aux = 0;
    e.type = rel ? EventType::release_fail : EventType::released;
    e.value = rel ? rel.value() : -1;
    ctx.rec.record(e);
    ++done;
    sleep_ns(cfg.think_ns);
  }
  return 0;
}

}  // namespace

std::unique_ptr<Workload> make_lock_workload() { return std::make_unique<LockWorkload>(); }

}  // namespace locksmith::harness::detail
