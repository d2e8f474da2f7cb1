// The worker processes of one host's run, as the controller and the nemesis see them (private to
// the harness): start, replace, reap, find a holder, crash one, pause one.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "engine_internal.hpp"

namespace locksmith::harness {
class RedisNemesis;
}

namespace locksmith::harness::detail {

class Fleet {
 public:
  Fleet(const RunConfig& cfg, std::filesystem::path run_dir, std::string exe, SharedState& shared,
        Recorder& controller);
  Fleet(const Fleet&) = delete;
  Fleet& operator=(const Fleet&) = delete;
  // SIGKILLs and reaps every worker still running.
  ~Fleet();

  // Starts the next worker process (its threads take the next slots); false when out of slots.
  bool start_one();
  // Reaps the workers that ended; blocking waits for all of them.
  void reap(bool block);
  void kill_all() noexcept;
  bool empty() const noexcept { return procs_.empty(); }
  // Worker ids this host used so far (replacements included).
  std::uint32_t ids_used() const noexcept { return next_index_ * cfg_.threads; }
  // The first worker that exited with an error or died without the nemesis ("" when none).
  const std::string& error() const noexcept { return error_; }
  // Whether that error was the lock call failing (the mechanism does not work here) rather than
  // the environment.
  bool lock_failed() const noexcept { return lock_failed_; }

  // A random process with a thread inside its critical section; nullopt when none is.
  std::optional<pid_t> pick_holder(std::mt19937& rng) const;
  // The kill nemesis: freezes the victim, records its crash, clears its slots, SIGKILLs and reaps
  // it, and starts a replacement.
  void crash(pid_t victim);
  // The pause nemesis: SIGSTOP for `ns`, then SIGCONT, with pause / resume events.
  void pause(pid_t victim, std::int64_t ns);
  std::uint64_t acquired_total() const noexcept;

 private:
  struct Proc {
    pid_t pid;
    std::uint32_t index;
  };
  void record_for(const Proc& p, EventType type);
  const Proc* find(pid_t pid) const;

  const RunConfig& cfg_;
  std::filesystem::path run_dir_;
  std::string exe_;
  SharedState& shared_;
  Recorder& controller_;
  std::vector<Proc> procs_;
  std::uint32_t next_index_ = 0;
  std::string error_;
  bool lock_failed_ = false;
};

// Faults: kill / pause holders, and Redis server faults. Private to the harness.
class Nemesis {
 public:
  // `lease_spec`: the spec whose Redis servers the server faults hit.
  Nemesis(const RunConfig& cfg, const std::string& lease_spec, std::filesystem::path run_dir,
          Recorder& controller);
  ~Nemesis();
  Nemesis(const Nemesis&) = delete;
  Nemesis& operator=(const Nemesis&) = delete;

  bool active() const noexcept { return !faults_.empty(); }
  // When the next fault is due (CLOCK_MONOTONIC ns).
  std::uint64_t next_at() const noexcept { return next_at_; }
  // Injects one fault now. Throws std::runtime_error naming the server a server fault failed on.
  void strike(Fleet& fleet, std::uint64_t now);

 private:
  enum class Fault { kill, pause, redis_kill, redis_restart, redis_stop };
  void server_fault(FaultKind what);
  void record_fault(EventType type, FaultKind what, std::size_t server);

  const RunConfig& cfg_;
  std::filesystem::path run_dir_;
  Recorder& controller_;
  std::vector<Fault> faults_;
  std::unique_ptr<harness::RedisNemesis> redis_;
  std::mt19937 rng_;
  std::uint64_t next_at_ = 0;
};

}  // namespace locksmith::harness::detail
