// RunConfig: the one description of a stress run. The controller writes it as run.json in the
// run directory; every worker and `locksmith check` read it back. One schema, versioned: a
// run.json of another version, or with a field missing or of the wrong type, is refused with a
// message naming the file and the field, never guessed at.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "locksmith/harness/history.hpp"

namespace locksmith::harness {

// Worker ids per host: workers (and their replacements) below, the controller at this offset.
inline constexpr std::uint32_t kControllerSlot = 512;

struct RunConfig {
  static constexpr int kSchemaVersion = 2;

  // Identity: histories carry run_id, host and worker id in their header, so a history of
  // another run (or another host of this run) is told apart from this run's.
  std::string run_id;    // 32 lower-case hex characters from the OS random source
  std::string hostname;  // the recording host's name (informative)
  std::uint8_t host = 0;
  std::uint32_t hosts = 1;
  std::uint32_t first_worker_id = 0;  // host K's workers are K*1000 .. K*1000 + workers - 1

  // What runs.
  std::string spec;       // as given, incl. scenario and broken: prefixes
  std::string peer_spec;  // the same lock through a second mount (odd processes use it)
  std::string kind;       // "flock", "sem", "atomic-write", "broken-noop", ...
  std::string workload;   // "lock", "atomic", "filestore", "fenced"
  std::uint32_t processes = 0;
  std::uint32_t threads = 1;
  std::uint32_t workers = 0;  // processes * threads: the histories this host must have
  std::uint32_t max_holders = 1;
  double shared_ratio = 0;
  std::int64_t hold_ns = 0;
  std::int64_t think_ns = 0;         // after each release
  std::int64_t timeout_ns = 0;       // per acquire (0: do not wait)
  std::int64_t duration_ns = 0;      // 0: by iterations
  std::uint64_t iterations = 0;      // 0: by duration
  std::uint64_t start_ns = 0;        // CLOCK_MONOTONIC when the workers were told to start
  std::vector<std::string> nemesis;  // "kill", "pause", "redis-kill", ...
  std::int64_t nemesis_interval_ns = 0;
  std::int64_t pause_for_ns = 0;
  bool tolerate_failures = false;  // a server nemesis runs: a failed acquire is an outcome

  // What the workload and the lock declared.
  bool counter = false;  // exclusive holders increment the guarded counter
  std::string guard;     // the guarded file
  std::string peer_guard;
  bool fenced = false;
  std::int64_t expiry_bound_ns = -1;  // Lockable::expiry_bound(); -1: the OS frees at death
  bool keep_alive = false;            // holders run a KeepAlive (the lock can be lost)

  std::uint32_t controller_id() const noexcept { return first_worker_id + kControllerSlot; }
  // The nemesis list as one string ("kill,pause"), as reports show it.
  std::string nemesis_text() const;
  // What the checkers read.
  RunInfo info() const;

  std::string to_json() const;
  // Throws std::runtime_error naming `origin` (the file) and the field that is wrong.
  static RunConfig from_json(const std::string& text, const std::string& origin);
  static RunConfig load(const std::filesystem::path& file);
  // Writes `file` whole (temporary file + rename), so a reader never sees half of it.
  void save(const std::filesystem::path& file) const;
};

// 32 hex characters from getrandom(); throws std::system_error when the OS gives none.
std::string new_run_id();

}  // namespace locksmith::harness
