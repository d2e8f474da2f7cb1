// The worker processes of one host's run, and the nemesis that kills, pauses and hits servers.
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "fleet.hpp"
#include "redis_nemesis.hpp"

extern char** environ;

namespace locksmith::harness::detail {

Fleet::Fleet(const RunConfig& cfg, std::filesystem::path run_dir, std::string exe,
             SharedState& shared, Recorder& controller)
    : cfg_(cfg),
      run_dir_(std::move(run_dir)),
      exe_(std::move(exe)),
      shared_(shared),
      controller_(controller) {}

Fleet::~Fleet() {
  kill_all();
  reap(true);
}

bool Fleet::start_one() {
  if ((next_index_ + 1) * cfg_.threads > kMaxSlots) return false;
  shared_.slots_used.store((next_index_ + 1) * cfg_.threads);
  const std::string dir = run_dir_.string();
  const std::string index = std::to_string(next_index_);
  const std::string parent = std::to_string(::getpid());
  std::string arg0 = exe_;
  std::string verb = "__worker";
  char* argv[] = {arg0.data(),
                  verb.data(),
                  const_cast<char*>(dir.c_str()),
                  const_cast<char*>(index.c_str()),
                  const_cast<char*>(parent.c_str()),
                  nullptr};
  pid_t pid = 0;
  const int err = ::posix_spawn(&pid, exe_.c_str(), nullptr, nullptr, argv, environ);
  if (err != 0) fail("cannot start worker", exe_, err);
  procs_.push_back({pid, next_index_});
  ++next_index_;
  return true;
}

void Fleet::reap(bool block) {
  for (auto it = procs_.begin(); it != procs_.end();) {
    int status = 0;
    const pid_t r = ::waitpid(it->pid, &status, block ? 0 : WNOHANG);
    if (r != it->pid) {
      ++it;
      continue;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) != 0 && error_.empty()) {
      lock_failed_ = WEXITSTATUS(status) == kWorkerLockFailed;
      error_ = "worker process " + std::to_string(it->index) + " exited with status " +
               std::to_string(WEXITSTATUS(status)) + " (see its message above)";
    } else if (WIFSIGNALED(status) && error_.empty()) {
      error_ = "worker process " + std::to_string(it->index) + " died of signal " +
               std::to_string(WTERMSIG(status)) + " without the nemesis";
    }
    it = procs_.erase(it);
  }
}

void Fleet::kill_all() noexcept {
  for (const auto& p : procs_) {
    ::kill(p.pid, SIGCONT);  // a paused one must be able to die
    ::kill(p.pid, SIGKILL);
  }
}

std::optional<pid_t> Fleet::pick_holder(std::mt19937& rng) const {
  std::vector<pid_t> holders;
  for (const auto& p : procs_) {
    for (std::uint32_t t = 0; t < cfg_.threads; ++t) {
      if (shared_.slots[p.index * cfg_.threads + t].state.load() != kOut) {
        holders.push_back(p.pid);
        break;
      }
    }
  }
  if (holders.empty()) return std::nullopt;
  return holders[std::uniform_int_distribution<std::size_t>(0, holders.size() - 1)(rng)];
}

const Fleet::Proc* Fleet::find(pid_t pid) const {
  const auto it =
      std::find_if(procs_.begin(), procs_.end(), [&](const Proc& p) { return p.pid == pid; });
  return it == procs_.end() ? nullptr : &*it;
}

void Fleet::record_for(const Proc& p, EventType type) {
  for (std::uint32_t t = 0; t < cfg_.threads; ++t) {
    Event e;
    e.type = type;
    e.worker = cfg_.first_worker_id + p.index * cfg_.threads + t;
    e.host = cfg_.host;
    controller_.record(e);
  }
}

namespace {
bool stop_and_wait(pid_t pid) {
  ::kill(pid, SIGSTOP);
  int status = 0;
  return ::waitpid(pid, &status, WUNTRACED) == pid && WIFSTOPPED(status);
}
}  // namespace

void Fleet::crash(pid_t victim) {
  const Proc* found = find(victim);
  if (found == nullptr || !stop_and_wait(victim)) return;
  const Proc v = *found;
  // Frozen, the victim still holds the lock: record its crash and clear its slots before the
  // kill lets anybody else in, so no one sees a dead holder.
  record_for(v, EventType::crash);
  for (std::uint32_t t = 0; t < cfg_.threads; ++t) {
    shared_.slots[v.index * cfg_.threads + t].state.store(kOut);
  }
  ::kill(v.pid, SIGKILL);
  int status = 0;
  ::waitpid(v.pid, &status, 0);
  procs_.erase(
      std::find_if(procs_.begin(), procs_.end(), [&](const Proc& p) { return p.pid == v.pid; }));
  start_one();
}

void Fleet::pause(pid_t victim, std::int64_t ns) {
  const Proc* found = find(victim);
  if (found == nullptr || !stop_and_wait(victim)) return;
  const Proc v = *found;
  record_for(v, EventType::pause);
  sleep_ns(ns);
  record_for(v, EventType::resume);
  ::kill(v.pid, SIGCONT);
}

std::uint64_t Fleet::acquired_total() const noexcept {
  std::uint64_t n = 0;
  const std::uint32_t used = std::min(shared_.slots_used.load(), kMaxSlots);
  for (std::uint32_t i = 0; i < used; ++i) n += shared_.slots[i].acquired.load();
  return n;
}

// --- Nemesis ------------------------------------------------------------------------------------

Nemesis::Nemesis(const RunConfig& cfg, const std::string& lease_spec, std::filesystem::path run_dir,
                 Recorder& controller)
    : cfg_(cfg),
      run_dir_(std::move(run_dir)),
      controller_(controller),
      rng_(static_cast<unsigned>(monotonic_ns())) {
  bool server = false;
  for (const auto& name : cfg.nemesis) {
    if (name == "kill") {
      faults_.push_back(Fault::kill);
    } else if (name == "pause") {
      faults_.push_back(Fault::pause);
    } else if (name == "redis-kill") {
      faults_.push_back(Fault::redis_kill);
      server = true;
    } else if (name == "redis-restart") {
      faults_.push_back(Fault::redis_restart);
      server = true;
    } else if (name == "redis-stop") {
      faults_.push_back(Fault::redis_stop);
      server = true;
    } else {
      throw std::invalid_argument("unknown nemesis '" + name +
                                  "' (known: kill, pause, redis-kill, redis-restart, redis-stop)");
    }
  }
  if (server) redis_ = std::make_unique<RedisNemesis>(lease_spec);
  next_at_ = monotonic_ns() + static_cast<std::uint64_t>(cfg.nemesis_interval_ns);
}

Nemesis::~Nemesis() = default;

void Nemesis::record_fault(EventType type, FaultKind what, std::size_t server) {
  Event e;
  e.type = type;
  e.worker = cfg_.controller_id();
  e.host = cfg_.host;
  e.value = static_cast<std::int64_t>(what);
  e.aux = redis_->port(server);
  controller_.record(e);
}

void Nemesis::server_fault(FaultKind what) {
  RedisNemesis& rn = *redis_;
  if (what == FaultKind::redis_kill) {
    record_fault(EventType::fault, what, 0);
    rn.kill_clients();
    return;
  }
  const std::size_t server = std::uniform_int_distribution<std::size_t>(0, rn.servers() - 1)(rng_);
  if (what == FaultKind::redis_restart) {
    record_fault(EventType::fault, what, server);
    rn.restart(server, run_dir_ / ("redis-" + std::to_string(rn.port(server)) + ".log"));
    record_fault(EventType::fault_end, what, server);
    return;
  }
  const pid_t pid = rn.stop(server);
  record_fault(EventType::fault, what, server);
  sleep_ns(cfg_.pause_for_ns);
  record_fault(EventType::fault_end, what, server);
  RedisNemesis::resume(pid);
}

void Nemesis::strike(Fleet& fleet, std::uint64_t now) {
  next_at_ = now + static_cast<std::uint64_t>(cfg_.nemesis_interval_ns);
  const Fault fault =
      faults_[std::uniform_int_distribution<std::size_t>(0, faults_.size() - 1)(rng_)];
  switch (fault) {
    case Fault::kill:
      if (const auto victim = fleet.pick_holder(rng_)) fleet.crash(*victim);
      return;
    case Fault::pause:
      if (const auto victim = fleet.pick_holder(rng_)) fleet.pause(*victim, cfg_.pause_for_ns);
      return;
    case Fault::redis_kill:
      server_fault(FaultKind::redis_kill);
      return;
    case Fault::redis_restart:
      server_fault(FaultKind::redis_restart);
      return;
    case Fault::redis_stop:
      server_fault(FaultKind::redis_stop);
      return;
  }
}

}  // namespace locksmith::harness::detail
