// The stress controller: makes a fresh run directory, lets the workload prepare, writes the run
// description, starts the workers, runs the nemesis, stops everything at the end (or on
// SIGINT/SIGTERM/SIGHUP), drains, cleans up and checks. The rule it keeps: a run that could not
// produce complete evidence raises an environment error instead of giving a verdict.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <stdexcept>
#include <thread>

#include "engine_internal.hpp"
#include "fleet.hpp"
#include "locksmith/harness/engine.hpp"
#include "workloads/workload.hpp"

namespace locksmith::harness {
namespace {

using detail::fail;
using detail::sleep_ns;

// Lock-free, so the handler may store to it; atomic, so two controllers in one process (the
// multi-host tests run one per thread) do not race on it.
std::atomic<int> g_interrupted{0};
static_assert(std::atomic<int>::is_always_lock_free);

void on_interrupt(int signo) { g_interrupted.store(signo, std::memory_order_relaxed); }

constexpr std::array kInterrupts = {SIGINT, SIGTERM, SIGHUP};

// SIGINT/SIGTERM/SIGHUP set g_interrupted for the scope (when asked to), restored afterwards.
class InterruptScope {
 public:
  explicit InterruptScope(bool active) : active_(active) {
    if (!active_) return;
    g_interrupted.store(0, std::memory_order_relaxed);
    struct sigaction a {};
    a.sa_handler = on_interrupt;
    sigemptyset(&a.sa_mask);
    for (std::size_t i = 0; i < kInterrupts.size(); ++i) ::sigaction(kInterrupts[i], &a, &old_[i]);
  }
  ~InterruptScope() {
    if (!active_) return;
    for (std::size_t i = 0; i < kInterrupts.size(); ++i)
      ::sigaction(kInterrupts[i], &old_[i], nullptr);
    g_interrupted.store(0, std::memory_order_relaxed);
  }
  InterruptScope(const InterruptScope&) = delete;
  InterruptScope& operator=(const InterruptScope&) = delete;

 private:
  bool active_;
  std::array<struct sigaction, kInterrupts.size()> old_{};
};

void draw_progress(double elapsed, double total, std::uint64_t acquired, bool done) {
  const int width = 30;
  const double frac = total > 0 ? std::min(1.0, elapsed / total) : 0;
  const int filled = static_cast<int>(frac * width);
  std::string bar(static_cast<std::size_t>(filled), '#');
  bar.append(static_cast<std::size_t>(width - filled), '.');
  std::fprintf(stderr, "\r[%s] %5.1fs elapsed, %5.1fs left, %" PRIu64 " critical sections%s",
               bar.c_str(), elapsed, std::max(0.0, total - elapsed), acquired, done ? "\n" : "");
}

void validate(const StressOptions& o) {
  if (o.workers == 0) throw std::invalid_argument("--workers must be at least 1");
  if (!(o.shared_ratio >= 0 && o.shared_ratio <= 1)) {  // written so that nan fails too
    throw std::invalid_argument("--shared-ratio must be a fraction from 0 to 1");
  }
  if (!o.duration && !o.iterations) throw std::invalid_argument("need a duration or iterations");
  if (!o.rendezvous.empty() && o.host >= o.hosts) {
    throw std::invalid_argument("--host-index must be below --hosts");
  }
}

// A directory of this run's own: created now, or given and empty.
std::filesystem::path fresh_dir(const std::filesystem::path& dir, const char* what) {
  std::error_code ec;
  if (std::filesystem::create_directories(dir, ec)) return dir;
  if (ec) fail(std::string("cannot create ") + what, dir, ec.value());
  if (!std::filesystem::is_directory(dir, ec)) {
    throw EnvironmentError(std::string(what) + " '" + dir.string() + "' is not a directory");
  }
  if (!std::filesystem::is_empty(dir, ec) || ec) {
    throw EnvironmentError(std::string(what) + " '" + dir.string() +
                           "' is not empty: each run needs a fresh one (an earlier run's "
                           "histories would be judged with this run's)");
  }
  return dir;
}

// Every host of a multi-host run uses the same run id: the first to arrive writes it.
std::string shared_run_id(const std::filesystem::path& rendezvous, std::chrono::seconds timeout) {
  const auto path = rendezvous / "run-id";
  std::string mine = new_run_id();
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd >= 0) {
    const std::string line = mine + "\n";
    const bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
    ::close(fd);
    if (!ok) fail("cannot write", path, errno);
    return mine;
  }
  if (errno != EEXIST) fail("cannot create", path, errno);
  const std::uint64_t give_up =
      monotonic_ns() + static_cast<std::uint64_t>(timeout.count()) * 1000000000ULL;
  for (;;) {
    std::ifstream in(path);
    std::string id;
    if (in >> id && id.size() == 32) return id;
    if (monotonic_ns() >= give_up) {
      throw EnvironmentError("'" + path.string() + "' holds no run id");
    }
    sleep_ns(10000000);  // written a moment ago by another host: through NFS nothing can wake us
  }
}

// Every host writes ready-K once its guard file and run directory exist (host 0 first creates
// the guarded file), then waits until all hosts are ready. The directory is polled: on NFS
// nothing else can wake us.
void rendezvous(const StressOptions& o) {
  const auto ready = o.rendezvous / ("ready-" + std::to_string(o.host));
  if (std::error_code ec; std::filesystem::exists(ready, ec)) {
    throw EnvironmentError("'" + ready.string() +
                           "' exists already: use a fresh rendezvous directory for each run");
  }
  {
    std::ofstream out(ready);
    out << ::getpid() << '\n';
    if (!out) fail("cannot write", ready, errno);
  }
  const std::uint64_t give_up =
      monotonic_ns() + static_cast<std::uint64_t>(o.rendezvous_timeout.count()) * 1000000000ULL;
  for (;;) {
    // List the directory rather than stat each name: on NFS a stat of a missing name is answered
    // from the negative lookup cache for up to acdirmin (30 s), while opening the directory
    // revalidates it (close-to-open), so a new ready-K shows within one poll.
    std::uint32_t seen = 0;
    std::error_code ec;
    for (std::filesystem::directory_iterator it(o.rendezvous, ec), end; !ec && it != end;
         it.increment(ec)) {
      const std::string name = it->path().filename().string();
      for (std::uint32_t k = 0; k < o.hosts; ++k)
        seen += name == "ready-" + std::to_string(k) ? 1 : 0;
    }
    if (seen == o.hosts) return;
    if (monotonic_ns() >= give_up || g_interrupted != 0) {
      throw EnvironmentError(
          "rendezvous in '" + o.rendezvous.string() + "': only " + std::to_string(seen) + " of " +
          std::to_string(o.hosts) + " hosts checked in" +
          (g_interrupted != 0 ? " before the run was interrupted" : " within the timeout"));
    }
    sleep_ns(10000000);
  }
}

std::string hostname() {
  std::array<char, 256> buf{};
  if (::gethostname(buf.data(), buf.size() - 1) != 0) return "localhost";
  return buf.data();
}

class Controller {
 public:
  explicit Controller(const StressOptions& o) : o_(o) {}
  StressResult run();

 private:
  void make_run_dir();
  void build_config();
  void run_loop(detail::Fleet& fleet, detail::Nemesis& nemesis, detail::SharedState& shared);

  const StressOptions& o_;
  StressResult result_;
  RunConfig cfg_;
  std::unique_ptr<detail::Workload> workload_;
  bool remove_dir_ = false;
  std::string nemesis_error_;
};

void Controller::make_run_dir() {
  const bool multi_host = !o_.rendezvous.empty();
  if (multi_host) {
    result_.run_dir =
        fresh_dir(o_.rendezvous / ("host-" + std::to_string(o_.host)), "run directory");
  } else if (o_.run_dir.empty()) {
    result_.run_dir = make_temp_directory("locksmith-run");
    remove_dir_ = !o_.keep_run_dir;
  } else {
    result_.run_dir = fresh_dir(o_.run_dir, "history directory");
  }
}

void Controller::build_config() {
  RunConfig& c = cfg_;
  const bool multi_host = !o_.rendezvous.empty();
  c.run_id = multi_host ? shared_run_id(o_.rendezvous, o_.rendezvous_timeout) : new_run_id();
  c.hostname = hostname();
  c.host = o_.host;
  c.hosts = multi_host ? o_.hosts : 1;
  c.first_worker_id = multi_host ? o_.host * 1000u : 0u;
  c.spec = o_.spec;
  c.peer_spec = o_.peer_spec;
  c.processes = o_.workers;
  c.threads = o_.threads != 0 ? o_.threads : spec_kind(o_.spec) == "broken-fcntl-threads" ? 4 : 1;
  c.workers = c.processes * c.threads;
  if (c.workers > detail::kMaxSlots) {
    throw std::invalid_argument("at most " + std::to_string(detail::kMaxSlots) +
                                " workers (processes x threads) per host");
  }
  c.shared_ratio = o_.shared_ratio;
  c.hold_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(o_.hold).count();
  c.think_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(o_.think).count();
  c.timeout_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(o_.acquire_timeout).count();
  c.duration_ns =
      o_.duration ? std::chrono::duration_cast<std::chrono::nanoseconds>(*o_.duration).count() : 0;
  c.iterations = o_.iterations.value_or(0);
  for (const auto& [on, name] : {std::pair{o_.nemesis_kill, "kill"},
                                 {o_.nemesis_pause, "pause"},
                                 {o_.nemesis_redis_kill, "redis-kill"},
                                 {o_.nemesis_redis_restart, "redis-restart"},
                                 {o_.nemesis_redis_stop, "redis-stop"}}) {
    if (on) c.nemesis.emplace_back(name);
  }
  c.tolerate_failures = o_.nemesis_redis_kill || o_.nemesis_redis_restart || o_.nemesis_redis_stop;
  c.nemesis_interval_ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(o_.nemesis_interval).count();
  c.pause_for_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(o_.pause_for).count();
  workload_ = detail::make_workload(o_.spec);
  c.workload = workload_->name();
  workload_->prepare(c, o_, result_.run_dir);
}

void Controller::run_loop(detail::Fleet& fleet, detail::Nemesis& nemesis,
                          detail::SharedState& shared) {
  // The duration runs from when every worker is in its loop (bounded: a worker that never
  // gets there is an environment error).
  std::uint64_t start = 0;
  constexpr std::uint64_t kStartLimitNs = 60000000000ULL;
  const bool tty = o_.progress && ::isatty(STDERR_FILENO);
  const double total_s = cfg_.duration_ns > 0 ? static_cast<double>(cfg_.duration_ns) / 1e9 : 0;
  std::uint64_t last_draw = 0;
  const std::uint64_t grace_ns = static_cast<std::uint64_t>(cfg_.timeout_ns) + 10000000000ULL;
  std::uint64_t stop_at = 0;
  for (;;) {
    fleet.reap(false);
    const std::uint64_t now = monotonic_ns();
    if (start == 0 && shared.ready.load() >= cfg_.workers) start = now;
    if (start == 0 && stop_at == 0 && now - cfg_.start_ns > kStartLimitNs) {
      nemesis_error_ = "only " + std::to_string(shared.ready.load()) + " of " +
                       std::to_string(cfg_.workers) + " workers started within 60 s";
      shared.stop.store(1);
      stop_at = now;
    }
    const bool time_up = cfg_.duration_ns > 0 && start != 0 &&
                         now >= start + static_cast<std::uint64_t>(cfg_.duration_ns);
    // A worker that failed ends the run at once: its evidence is missing either way.
    if ((time_up || g_interrupted != 0 || !fleet.error().empty()) && stop_at == 0) {
      shared.stop.store(1);
      stop_at = now;
    }
    if (fleet.empty()) break;
    // Interrupted, the workers stop at once (SIGKILL): nothing will be judged.
    if (stop_at != 0 && (g_interrupted != 0 || now - stop_at > grace_ns)) {
      if (g_interrupted == 0 && fleet.error().empty() && nemesis_error_.empty()) {
        nemesis_error_ = "workers did not stop within the grace period";
      }
      fleet.kill_all();
      fleet.reap(true);
      break;
    }
    if (stop_at == 0 && nemesis.active() && now >= nemesis.next_at()) {
      try {
        nemesis.strike(fleet, now);
      } catch (const std::exception& e) {
        nemesis_error_ = e.what();  // stop the run: its workers finish, then the error is raised
        shared.stop.store(1);
        stop_at = now;
      }
    }
    if (tty && start != 0 && now - last_draw > 100000000) {
      draw_progress(static_cast<double>(now - start) / 1e9, total_s, fleet.acquired_total(), false);
      last_draw = now;
    }
    sleep_ns(5000000);
  }
  if (tty && start != 0) {
    draw_progress(static_cast<double>(monotonic_ns() - start) / 1e9, total_s,
                  fleet.acquired_total(), true);
  }
}

StressResult Controller::run() {
  validate(o_);
  InterruptScope interrupts(o_.handle_signals);
  make_run_dir();
  struct Cleanup {
    Controller& c;
    ~Cleanup() {
      if (c.workload_) c.workload_->cleanup(c.cfg_);
      std::error_code ec;
      if (c.remove_dir_) std::filesystem::remove_all(c.result_.run_dir, ec);
    }
  } cleanup{*this};
  build_config();
  detail::SharedMap shared(result_.run_dir / "state.bin", true);
  Recorder controller(result_.run_dir / "history-controller.bin", 1 << 16,
                      {cfg_.run_id, cfg_.host, cfg_.controller_id()});
  // The run's clock starts once every host is here: meeting through NFS can take seconds (its
  // directory cache), which must not eat the run's duration.
  if (!o_.rendezvous.empty()) rendezvous(o_);
  cfg_.start_ns = monotonic_ns();
  cfg_.save(result_.run_dir / "run.json");
  workload_->start(cfg_, controller);
  const std::string scenario_lease =
      cfg_.workload == "fenced" ? scenario_of(cfg_.spec).path : cfg_.spec;
  detail::Nemesis nemesis(cfg_, scenario_lease, result_.run_dir, controller);
  const std::string exe = o_.worker_exe.empty() ? "/proc/self/exe" : o_.worker_exe;
  {
    detail::Fleet fleet(cfg_, result_.run_dir, exe, *shared, controller);
    for (std::uint32_t i = 0; i < cfg_.processes; ++i) fleet.start_one();
    run_loop(fleet, nemesis, *shared);
    result_.elapsed_s = static_cast<double>(monotonic_ns() - cfg_.start_ns) / 1e9;
    if (g_interrupted == 0 && !nemesis_error_.empty()) throw EnvironmentError(nemesis_error_);
    if (g_interrupted == 0 && !fleet.error().empty()) {
      if (fleet.lock_failed()) throw LockFailed(fleet.error());
      throw EnvironmentError(fleet.error());
    }
    if (g_interrupted == 0) workload_->drain(cfg_, controller, result_);
    Event end;
    end.type = EventType::run_end;
    end.worker = cfg_.controller_id();
    end.host = cfg_.host;
    end.value = fleet.ids_used();
    end.aux = g_interrupted != 0 ? 1 : 0;
    controller.record(end);
    if (controller.error() != 0) {
      throw EnvironmentError("cannot extend the controller's history in '" +
                             result_.run_dir.string() + "': " + std::strerror(controller.error()));
    }
  }
  result_.config = cfg_;
  if (g_interrupted != 0) {
    result_.interrupted_by = g_interrupted;
    result_.history.info = cfg_.info();
    return result_;
  }
  try {
    // A host of a multi-host run judges its own histories; `check` judges them together.
    result_.history = load_history({result_.run_dir}, o_.rendezvous.empty());
  } catch (const HistoryError& e) {
    throw EnvironmentError(e.what());
  }
  result_.checks = workload_->check(result_.history, result_.final_counter);
  return result_;
}

}  // namespace

std::filesystem::path make_temp_directory(std::string_view prefix) {
  const char* tmp = std::getenv("TMPDIR");
  std::string templ = std::string(tmp && *tmp ? tmp : "/tmp");
  templ.append("/").append(prefix).append("-XXXXXX");
  if (::mkdtemp(templ.data()) == nullptr) fail("cannot create a temporary directory", templ, errno);
  return templ;
}

StressResult run_stress(const StressOptions& options) {
  StressResult r = Controller(options).run();
  if (!options.evidence_budget || !options.duration || !options.run_dir.empty()) return r;
  const auto wants_more = [](const StressResult& res) {
    if (res.interrupted_by != 0) return false;
    bool inconclusive = false;
    for (const auto& c : res.checks) {
      if (c.verdict == Verdict::fail) return false;
      inconclusive |= c.verdict == Verdict::inconclusive;
    }
    return inconclusive;
  };
  StressOptions o = options;
  auto spent = *options.duration;
  while (wants_more(r) && spent < *options.evidence_budget) {
    o.duration = std::min(*o.duration * 2, *options.evidence_budget - spent);
    spent += *o.duration;
    r = Controller(o).run();
  }
  return r;
}

}  // namespace locksmith::harness
