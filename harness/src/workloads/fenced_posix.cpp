// The fenced-resource workload: holders of a lease write to a resource that checks their fencing
// token, as a database would: fenced.log in the run directory, made atomic by its own flock.
// The resource keeps the highest token it accepted (fenced.state) and rejects a write with a
// smaller one (the broken twin accepts everything). Each write gets the resource's next sequence
// number, so the checker sees the writes in the resource's own order, without clocks.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "locksmith/keep_alive.hpp"
#include "locksmith/unique_fd.hpp"
#include "workload.hpp"

namespace locksmith::harness::detail {
namespace {

constexpr std::size_t kFenceStateSize = 48;

struct FencedWrite {
  std::int64_t seq = 0;
  bool accepted = false;
};

class FencedResource {
 public:
  FencedResource(const std::filesystem::path& run_dir, bool broken)
      : log_path_(run_dir / "fenced.log"), broken_(broken) {
    log_.reset(::open(log_path_.c_str(), O_RDWR | O_APPEND | O_CLOEXEC));
    if (!log_) fail("cannot open the fenced resource", log_path_, errno);
    const auto state = run_dir / "fenced.state";
    state_.reset(::open(state.c_str(), O_RDWR | O_CLOEXEC));
    if (!state_) fail("cannot open the fenced resource's state", state, errno);
  }

  static void create(const std::filesystem::path& run_dir) {
    for (const char* name : {"fenced.log", "fenced.state"}) {
      const auto path = run_dir / name;
      UniqueFd f(::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644));
      if (!f) fail("cannot create the fenced resource", path, errno);
    }
  }

  FencedWrite write(std::int64_t fence, std::uint32_t worker, std::uint32_t op) {
    while (::flock(log_.get(), LOCK_EX) != 0) {
      if (errno != EINTR) fail("cannot lock the fenced resource", log_path_, errno);
    }
    char buf[kFenceStateSize + 1] = {};
    long long seq = 0;
    long long highest = -1;
    if (::pread(state_.get(), buf, kFenceStateSize, 0) > 0) {
      std::sscanf(buf, "%lld %lld", &seq, &highest);
    }
    FencedWrite w;
    w.seq = ++seq;
    w.accepted = broken_ || fence >= highest;
    if (w.accepted && fence > highest) highest = fence;
    char line[96];
    const int n = std::snprintf(line, sizeof line, "%lld %" PRId64 " %u %u %s\n", seq, fence,
                                worker, op, w.accepted ? "accepted" : "rejected");
    if (::write(log_.get(), line, static_cast<std::size_t>(n)) != n) {
      fail("cannot write the fenced resource", log_path_, errno);
    }
    std::memset(buf, ' ', kFenceStateSize);
    const int m = std::snprintf(buf, sizeof buf, "%lld %lld", seq, highest);
    buf[m] = ' ';
    if (::pwrite(state_.get(), buf, kFenceStateSize, 0) != static_cast<ssize_t>(kFenceStateSize)) {
      fail("cannot write the fenced resource's state", log_path_, errno);
    }
    ::flock(log_.get(), LOCK_UN);
    return w;
  }

 private:
  std::filesystem::path log_path_;
  bool broken_;
  UniqueFd log_;
  UniqueFd state_;
};

class FencedWorkload final : public Workload {
 public:
  explicit FencedWorkload(bool broken) : broken_(broken) {}
  const char* name() const noexcept override { return "fenced"; }

  void prepare(RunConfig& cfg, const StressOptions& o,
               const std::filesystem::path& run_dir) override {
    cfg.kind = spec_kind(o.spec);
    cfg.fenced = true;
    if (!o.rendezvous.empty()) {
      throw std::invalid_argument("the fenced scenario runs on one host (its resource is local)");
    }
    if (o.shared_ratio > 0) throw std::invalid_argument("'" + o.spec + "' has no shared mode");
    auto probe = open_harness_lock(lease_of(o.spec));  // validates the lease spec
    if (const auto bound = probe->expiry_bound()) {
      cfg.expiry_bound_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(*bound).count();
    }
    FencedResource::create(run_dir);
  }

  int work(WorkerContext& ctx) override;

 private:
  std::string lease_of(const std::string& spec) const { return scenario_of(spec).path; }

  bool broken_;
};

int FencedWorkload::work(WorkerContext& ctx) {
  const RunConfig& cfg = ctx.cfg;
  const std::string lease = lease_of(ctx.spec);
  std::unique_ptr<Lockable> lock = open_harness_lock(lease);
  FencedResource resource(ctx.run_dir, broken_);
  ctx.me().alive.store(1);
  std::uint64_t done = 0;
  for (std::uint32_t op = 0; !ctx.over(done); ++op) {
    Event e = ctx.event(op, EventType::invoke);
    e.value = cfg.timeout_ns;
    if (!ctx.rec.record(e)) break;
    ctx.me().attempts.fetch_add(1, std::memory_order_relaxed);
    const std::error_code ec = lock->acquire(LockMode::exclusive, ctx.deadline());
    e.time_ns = 0;
    if (ec) {
      e.type = outcome_of(ec);
      e.value = ec.value();
      ctx.rec.record(e);
      if (e.type == EventType::fail && !cfg.tolerate_failures) {
        std::fprintf(stderr, "locksmith worker %u: cannot lock '%s': %s\n", ctx.id, lease.c_str(),
                     ec.message().c_str());
        return exit_code_for(ec);
      }
      if (e.type == EventType::fail) sleep_ns(1000000);
      continue;
    }
    ctx.me().state.store(kInExclusive, std::memory_order_seq_cst);
    std::uint32_t writers = 0;
    const std::uint32_t n = std::min(ctx.shared.slots_used.load(), kMaxSlots);
    for (std::uint32_t i = 0; i < n; ++i) {
      if (i != ctx.slot && ctx.shared.slots[i].state.load(std::memory_order_seq_cst) != kOut) {
        ++writers;
      }
    }
    const auto fence = lock->describe().fence;
    if (!fence) {
      std::fprintf(stderr, "locksmith worker %u: '%s' gives no fencing token\n", ctx.id,
                   lease.c_str());
      return 3;
    }
    e.type = EventType::ok;
    e.value = static_cast<std::int64_t>(*fence);
    e.witness_writers = writers;
    ctx.rec.record(e);
    ctx.me().acquired.fetch_add(1, std::memory_order_relaxed);
    // The pause nemesis stops holders here: a holder stopped past its TTL writes late. (No
    // keep-alive here on purpose: the scenario shows what fencing does for a holder that
    // lost its lease without knowing.)
    sleep_ns(cfg.hold_ns);
    const FencedWrite w = resource.write(e.value, ctx.id, op);
    e.time_ns = 0;
    e.type = EventType::fenced_write;
    e.aux = w.accepted ? w.seq : -w.seq;
    e.witness_writers = 0;
    ctx.rec.record(e);
    ctx.me().state.store(kOut, std::memory_order_seq_cst);
    e.time_ns = 0;
    e.type = EventType::release;
    e.value = -1;
    e.aux = 0;
    ctx.rec.record(e);
    const std::error_code rel = lock->release();
    e.time_ns = 0;
    e.type = rel ? EventType::release_fail : EventType::released;
    e.value = rel ? rel.value() : -1;
    ctx.rec.record(e);
    ++done;
  }
  return 0;
}

}  // namespace

std::unique_ptr<Workload> make_fenced_workload(bool broken) {
  return std::make_unique<FencedWorkload>(broken);
}

}  // namespace locksmith::harness::detail
