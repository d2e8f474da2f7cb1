// Histories: what each worker saw, Jepsen-style, recorded as fixed-size events and checked offline.
//
// Each worker appends events to its own history file (history-<worker>.bin in the run directory).
// The file is a memory-mapped array of Event records: recording one event is a few stores (no
// system call), and the records are in the page cache the moment they are stored, so they survive
// the worker being SIGKILLed mid-critical-section. A record is complete when its `magic` byte is
// set (stored last, with release ordering); a torn last record is ignored on load.
//
// Evidence that adds up: record 0 of every file is a header (EventType::header) naming the run
// (run id), the host, the worker and the file's capacity; every later record carries its sequence
// number. The space is allocated when the file is created (a full disk fails there, not with a
// SIGBUS mid-run). load_history refuses a file that is truncated, corrupt, of another run, host
// or worker, or given twice, and a run whose declared histories are not all there.
#pragma once

#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "locksmith/unique_fd.hpp"

namespace locksmith::harness {

enum class EventType : std::uint8_t {
  invoke = 1,         // acquire called; value = wait in ns (-1 forever, 0 no wait)
  ok = 2,             // acquire succeeded; value = fencing token or -1; witness_* = evidence
  busy = 3,           // acquire refused without waiting
  timeout = 4,        // acquire gave up at its deadline
  fail = 5,           // acquire failed with an error; value = error code value
  release = 6,        // leaving the critical section (release about to be called);
                      // value = counter value read in the critical section (-1 if none),
                      // aux = 1 when the owner witness was overwritten by someone else
  released = 7,       // release returned ok
  release_fail = 8,   // release returned an error; value = error code value
  crash = 9,          // controller: worker was SIGKILLed (worker = victim)
  pause = 10,         // controller: worker SIGSTOPped
  resume = 11,        // controller: worker SIGCONTed
  read = 12,          // reader saw a version of an atomically written file; value = version,
                      // aux = 1 when the content was partial or corrupt
  write = 13,         // writer publishes a version (recorded just before); value = version
  put = 14,           // producer commits a FileStore message (recorded just before); value = id
  take = 15,          // consumer claimed a message; value = id, aux = 1 when partial or corrupt
  stored = 16,        // controller, after the run: the message is in the store's cur/; value = id
  fenced_write = 17,  // a holder wrote to the fenced resource; value = its fencing token,
                      // aux = the resource's sequence number of the write (1, 2, ... in the order
                      // the resource saw them), positive when accepted, negative when rejected
  fault = 18,         // controller: a server fault began; value = FaultKind, aux = server port
  fault_end = 19,     // controller: that fault is over (server resumed / restarted); as fault
  lost = 20,          // the holder was told its lock was lost (a lease expired or was taken);
                      // value = ns from the loss being detectable to the holder being told,
                      // or -1 when unknown
  run_end = 21,       // controller, last: value = worker ids used on this host (replacements
                      // of killed workers included), aux = 1 when the run was interrupted
  header = 22,        // record 0 of a file: value/aux = run id, time_ns = capacity, op = format
};

// What a fault / fault_end event's value means.
enum class FaultKind : std::int64_t { redis_kill = 1, redis_restart = 2, redis_stop = 3 };

enum class Mode : std::uint8_t { exclusive = 0, shared = 1 };

constexpr std::uint8_t kEventMagic = 0xA5;

struct Event {
  std::uint64_t time_ns = 0;  // CLOCK_MONOTONIC on the recording host
  std::uint32_t worker = 0;   // unique in the run (across hosts)
  std::uint32_t op = 0;       // operation number within the worker
  EventType type = EventType::invoke;
  Mode mode = Mode::exclusive;
  std::uint8_t host = 0;   // index of the recording host (0 = the controller's)
  std::uint8_t magic = 0;  // kEventMagic once the record is complete
  // Clock-free evidence, taken on entry to the critical section from the occupancy counter in
  // shared memory: how many OTHER exclusive and shared holders were inside at that moment.
  std::uint32_t witness_writers = 0;
  std::uint32_t witness_readers = 0;
  std::uint32_t seq = 0;  // the record's index in its file (the header is 0)
  std::int64_t value = -1;
  std::int64_t aux = 0;
};
static_assert(sizeof(Event) == 48, "the on-disk layout is 48 bytes per event");

const char* to_string(EventType t) noexcept;

// What was run; stored as run.json in the run directory by the controller.
struct RunInfo {
  std::string spec;               // the lock spec as given
  std::string kind;               // "flock", "fcntl", "sem", "broken-noop", ...
  std::uint32_t max_holders = 1;  // exclusive: 1; semaphore: its maximum
  bool shared_mix = false;        // workers mix shared and exclusive acquisitions
  std::uint32_t workers = 0;
  std::int64_t timeout_ns = -1;  // per-acquire wait (-1 forever)
  std::int64_t duration_ns = 0;
  std::uint64_t start_ns = 0;  // CLOCK_MONOTONIC at the start
  std::string nemesis;         // "", "kill", "pause", "kill,pause", "redis-kill,redis-stop", ...
  bool counter = true;         // workers incremented a counter file inside the critical section
  // The fenced-resource scenario: holders whose lease expired may overlap (that is what the
  // fencing token is for); check_fenced_writes judges the run, exclusion only informs.
  bool fenced = false;
  // How long after its holder died the lock is released at the latest: -1 when the OS releases
  // it at death (flock, fcntl, ...); the lifetime + clock slop of a link lock, the TTL of a Redis
  // lease (Lockable::expiry_bound()). Crash recovery and liveness are judged against it.
  std::int64_t expiry_bound_ns = -1;
};

// All events of one run, from one or more hosts. Events of each host are in time order;
// `events` is sorted by (host, time_ns, worker), stable within a worker.
struct History {
  RunInfo info;
  std::vector<Event> events;
};

// Who a history file belongs to (its header record).
struct HistoryOwner {
  std::string run_id;  // 32 hex characters
  std::uint8_t host = 0;
  std::uint32_t worker = 0;
};

inline constexpr std::uint32_t kHistoryFormat = 2;

// Appends events to a memory-mapped history file. Not thread-safe: one recorder per worker thread.
class Recorder {
 public:
  // Creates `path` (which must not exist: a reused directory is refused) with room for
  // `capacity` events after the header, all allocated now. Throws std::system_error naming the
  // file and the OS error (ENOSPC, EEXIST, ...).
  Recorder(const std::filesystem::path& path, std::size_t capacity, const HistoryOwner& owner);
  ~Recorder();
  Recorder(const Recorder&) = delete;
  Recorder& operator=(const Recorder&) = delete;

  // Stores one event (time_ns is filled in when 0). Returns false when the file is full, or
  // when its disk is (error() then says why).
  bool record(Event e) noexcept;
  std::size_t size() const noexcept { return size_; }
  std::size_t capacity() const noexcept { return capacity_; }
  // The errno that stopped recording (ENOSPC, ...); 0 while none did.
  int error() const noexcept { return error_; }

 private:
  static constexpr std::size_t kReserveChunk = 65536;  // events reserved ahead (3 MiB)
  int reserve() noexcept;

  UniqueFd fd_;
  Event* events_ = nullptr;
  std::size_t size_ = 0;
  std::size_t capacity_ = 0;
  std::size_t allocated_ = 0;
  int error_ = 0;
};

std::uint64_t monotonic_ns() noexcept;

// Loads the histories of one run: each directory holds one host's run.json and history files.
// Every history the run declared must be there, intact, and belong to it; otherwise throws
// HistoryError naming the file (or the missing worker) and what is wrong.
// With all_hosts false, the hosts that were not given are not required (one host's own view).
History load_history(const std::vector<std::filesystem::path>& dirs, bool all_hosts = true);
// Loads the complete records of one file (header checked and dropped). Throws HistoryError.
std::vector<Event> load_events(const std::filesystem::path& file, HistoryOwner* owner = nullptr);

// The evidence does not add up: a verdict cannot be given (an environment error, exit 2).
class HistoryError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace locksmith::harness
