// What the controller, the workers, the nemesis and the workloads share (private to the harness):
// the shared-memory page of one host's run, the worker context, and small POSIX helpers.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <system_error>

#include "locksmith/harness/history.hpp"
#include "locksmith/harness/run_config.hpp"

namespace locksmith::harness::detail {

inline constexpr std::uint32_t kMaxSlots = kControllerSlot;
inline constexpr std::uint32_t kOut = 0;
inline constexpr std::uint32_t kInExclusive = 1;
inline constexpr std::uint32_t kInShared = 2;

// One per worker thread, on its own cache line.
struct alignas(64) Slot {
  std::atomic<std::uint32_t> state{kOut};
  std::atomic<std::uint32_t> alive{0};
  std::atomic<std::uint64_t> acquired{0};
  std::atomic<std::uint64_t> attempts{0};
};

// state.bin: shared by the controller and every worker of one host.
struct SharedState {
  std::atomic<std::uint32_t> stop{0};
  std::atomic<std::uint32_t> slots_used{0};
  // Workers that reached their loop (restarted ones count again): the run's duration is counted
  // from when every worker of the run got there, so that a slow start (a loaded machine, a
  // sanitizer build) does not eat it.
  std::atomic<std::uint32_t> ready{0};
  Slot slots[kMaxSlots];
};
static_assert(std::atomic<std::uint32_t>::is_always_lock_free &&
                  std::atomic<std::uint64_t>::is_always_lock_free,
              "atomics in shared memory must be lock-free (address-free)");

// state.bin mapped into this process.
class SharedMap {
 public:
  SharedMap(const std::filesystem::path& path, bool create);
  ~SharedMap();
  SharedMap(const SharedMap&) = delete;
  SharedMap& operator=(const SharedMap&) = delete;
  SharedState* operator->() const { return state_; }
  SharedState& operator*() const { return *state_; }

 private:
  SharedState* state_ = nullptr;
};

[[noreturn]] void fail(const std::string& what, const std::filesystem::path& path, int err);
void sleep_ns(std::int64_t ns);

// What one worker thread works with.
struct WorkerContext {
  const RunConfig& cfg;
  std::string spec;   // the lock (or scenario) spec this worker uses: spec or peer_spec
  std::string guard;  // the guarded file it uses: guard or peer_guard
  std::filesystem::path run_dir;
  SharedState& shared;
  std::uint32_t slot = 0;  // index into shared.slots
  std::uint32_t id = 0;    // worker id (first_worker_id + slot)
  Recorder& rec;

  Slot& me() const { return shared.slots[slot]; }
  // The controller said stop, the iterations are done, or time is up.
  bool over(std::uint64_t done) const;
  // A fresh event of this worker.
  Event event(std::uint32_t op, EventType type) const;
  // The acquire deadline of one attempt.
  std::chrono::steady_clock::time_point deadline() const;
};

// The result type of an acquire as an event.
EventType outcome_of(std::error_code ec) noexcept;

// Worker exit codes the controller tells apart.
inline constexpr int kWorkerLockFailed =
    4;  // the lock call failed: the mechanism does not work here
inline constexpr int kWorkerEnvironment =
    3;  // I/O on the run's own files failed, or out of resources
// The worker exit code for an acquire that failed with `ec`: resource exhaustion and I/O
// errors (ENOSPC, EDQUOT, EIO, EROFS, EMFILE, ENFILE, ENOMEM) are the environment's, anything
// else (ENOLCK, EOPNOTSUPP, ...) says the lock does not work here.
int exit_code_for(std::error_code ec) noexcept;

}  // namespace locksmith::harness::detail
