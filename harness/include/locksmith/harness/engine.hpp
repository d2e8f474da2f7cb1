// The stress engine: a controller spawns worker processes (re-executing its own binary), each
// loops acquire -> critical section -> release on one lock spec and records what it saw; the
// nemesis kills or pauses holders; afterwards the histories are loaded and checked.
//
// Clock-free evidence: every worker has a slot in a shared-memory page (state.bin in the run
// directory). On entering its critical section a worker publishes its mode in its slot and then
// reads every other slot (sequentially consistent, Dekker style: of two concurrent entrants at
// least one sees the other), recording how many writers/readers it saw in its ok event. Inside
// an exclusive section it also works a guarded file next to the lock: it reads the counter,
// writes its own owner witness, holds, checks the witness is still its own, and writes counter+1.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "locksmith/harness/checkers.hpp"
#include "locksmith/harness/history.hpp"
#include "locksmith/harness/run_config.hpp"
#include "locksmith/lockable.hpp"

namespace locksmith::harness {

struct StressOptions {
  std::string spec;  // lock spec, incl. the harness's broken:* specs
  // The same lock through a second mount of the same export: odd-numbered worker processes use
  // it (probe --peer-dir). Empty: every worker uses `spec`.
  std::string peer_spec;
  std::uint32_t workers = 4;  // worker processes
  std::uint32_t threads = 0;  // threads per worker process (0: 1, or 4 for broken:fcntl-threads)
  std::optional<std::chrono::milliseconds> duration;  // run this long, or
  // With a duration: while a check is inconclusive (too little evidence) and none failed, run
  // again for twice as long, until this much time in all was spent (each run is fresh; only the
  // last is reported). Needs a temporary run directory (run_dir empty).
  std::optional<std::chrono::milliseconds> evidence_budget;
  std::optional<std::uint64_t> iterations;  // this many critical sections per worker
  std::chrono::microseconds hold{50};       // time inside each critical section
  // Time outside, after each release: lets polling waiters (link, mkdir, dotlock) find the lock
  // free now and then, so that a short run sees handoffs between workers.
  std::chrono::microseconds think{0};
  std::chrono::milliseconds acquire_timeout{2000};  // per acquire (0: do not wait)
  double shared_ratio = 0;     // fraction of acquisitions that are shared (0: none)
  bool nemesis_kill = false;   // SIGKILL holders inside their critical section
  bool nemesis_pause = false;  // SIGSTOP holders, resume them later
  // Faults of the Redis server(s) behind a redis://, redis+pubsub:// or redlock:// spec (or the
  // lease of a fenced: scenario); the server must be on this host for restart and stop:
  bool nemesis_redis_kill = false;     // CLIENT KILL every normal and pubsub client but ours
  bool nemesis_redis_restart = false;  // SIGTERM the server, start it again (same config)
  bool nemesis_redis_stop = false;     // SIGSTOP one server (a random master) for pause_for
  std::chrono::milliseconds nemesis_interval{300};
  std::chrono::milliseconds pause_for{200};
  // The run's histories: empty = a fresh temporary directory, removed after the run unless
  // keep_run_dir. A given directory must not exist or be empty (a reused one would mix an earlier
  // run's histories in); it is kept.
  std::filesystem::path run_dir;
  bool keep_run_dir = false;
  // Multi-host runs: one controller per host, all pointed at the same `rendezvous` directory on
  // the shared filesystem. Host K keeps its histories in rendezvous/host-K (worker ids from
  // K*1000), host 0 creates the guarded file, and every host starts once all `hosts` have checked
  // in. Re-check the union afterwards with `locksmith check RENDEZVOUS`.
  std::filesystem::path rendezvous;
  std::uint32_t hosts = 1;
  std::uint8_t host = 0;  // this host's index
  std::chrono::seconds rendezvous_timeout{120};
  std::string worker_exe;  // binary to re-execute (default: /proc/self/exe)
  bool progress = false;   // draw a progress bar on stderr
  // SIGINT / SIGTERM / SIGHUP stop the run: the workers are stopped, the result is marked
  // interrupted (no verdict) and the temporary run directory is removed. For the CLI; a library
  // caller keeps its own signal handling with false.
  bool handle_signals = false;
};

struct StressResult {
  RunConfig config;
  History history;
  std::optional<std::int64_t> final_counter;
  std::vector<CheckResult> checks;
  std::filesystem::path run_dir;
  double elapsed_s = 0;
  int interrupted_by = 0;  // the signal that stopped the run (0: it ran to its end)
};

// The run could not produce evidence to judge (a worker died without the nemesis, a file could
// not be written, the histories do not add up): an environment error, exit 2, never a verdict.
class EnvironmentError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The lock itself failed in every way the workers tried it (ENOLCK, EOPNOTSUPP, ...): the
// mechanism does not work here. `probe` reports it UNSUPPORTED.
class LockFailed : public EnvironmentError {
 public:
  using EnvironmentError::EnvironmentError;
};

// Runs one stress scenario to completion and checks it. Throws std::invalid_argument for bad
// options, locksmith::LockError for a bad spec, EnvironmentError (or std::system_error naming
// the path) when the run could not be carried out. An interrupted run returns without checks.
StressResult run_stress(const StressOptions& options);

// Entry point of a worker process: `<exe> __worker RUN_DIR PROCESS_INDEX CONTROLLER_PID`.
// Returns the exit code.
int worker_main(const std::filesystem::path& run_dir, std::uint32_t process_index,
                std::int64_t controller_pid = 0);

// Scenario specs: not locks, but workloads the engine runs with the same workers, nemesis and
// checkers (check_atomic_visibility, check_exactly_once):
//   atomic:PATH         even-numbered workers publish new versions of PATH with AtomicFile
//                       (temporary file, fsync, rename), odd-numbered ones read it and check each
//                       read is one complete version; the kill nemesis kills writers mid-write
//   broken:atomic:PATH  the same, but written in place (truncate, write): readers see torn files
//   filestore:DIR       even-numbered workers produce messages into the FileStore DIR
//   (tmp/new/cur),
//                       odd-numbered ones claim them (claim_next); the controller drains new/ after
//                       the run; check_exactly_once judges delivery
//   broken:filestore:DIR  consumers claim by read, copy to cur/, unlink: duplicates
//   fenced:SPEC         workers acquire the lease SPEC (redis://...), take its fencing token,
//                       hold, then write to a fenced resource (fenced.log in the run directory,
//                       guarded by its own flock) that rejects a token smaller than the highest
//                       it accepted; check_fenced_writes judges it
//   broken:fenced:SPEC  the same, but the resource accepts every write
enum class ScenarioKind {
  none,
  atomic,
  broken_atomic,
  filestore,
  broken_filestore,
  fenced,
  broken_fenced
};
struct Scenario {
  ScenarioKind kind = ScenarioKind::none;
  std::string path;
};
Scenario scenario_of(std::string_view spec);

// Registers the URL schemes of this build with open_lock() (redis:// when locksmith::redis is
// built). Idempotent; open_harness_lock() and spec_kind() call it.
void register_schemes();

// Opens a lock from a spec: the core's specs plus the deliberately broken locks the checkers
// must catch:
//   broken:noop:PATH           acquire always succeeds, nothing is locked
//   broken:create:PATH         check-then-create: stat(), then open(O_CREAT) without O_EXCL
//   broken:fcntl-threads:PATH  a process-scoped fcntl lock used by several threads of a process
std::unique_ptr<Lockable> open_harness_lock(const std::string& spec);

// A fresh directory `$TMPDIR/PREFIX-XXXXXX` (or under /tmp); throws std::system_error naming it.
std::filesystem::path make_temp_directory(std::string_view prefix);

// The kind reported for a spec: "flock", "fcntl", "ofd", "sem", "broken-noop", ...
std::string spec_kind(const std::string& spec);

}  // namespace locksmith::harness
