// The stress controller and its worker processes (POSIX).
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <stdexcept>
#include <thread>
#include <tuple>

#include "locksmith/atomic_file.hpp"
#include "locksmith/filestore.hpp"
#include "locksmith/harness/engine.hpp"
#include "locksmith/spec.hpp"
#include "locksmith/unique_fd.hpp"
#include "redis_nemesis.hpp"

extern char** environ;

namespace locksmith::harness {
namespace {

constexpr std::uint32_t kMaxSlots = 512;
constexpr std::uint32_t kOut = 0;
constexpr std::uint32_t kInExclusive = 1;
constexpr std::uint32_t kInShared = 2;
constexpr std::size_t kGuardSize = 64;
constexpr long kNfsSuperMagic = 0x6969;  // NFS_SUPER_MAGIC

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
  Slot slots[kMaxSlots];
};
static_assert(std::atomic<std::uint32_t>::is_always_lock_free &&
                  std::atomic<std::uint64_t>::is_always_lock_free,
              "atomics in shared memory must be lock-free (address-free)");

[[noreturn]] void fail(const std::string& what, const std::filesystem::path& path, int err) {
  throw std::system_error(err, std::generic_category(), what + " '" + path.string() + "'");
}

class SharedMap {
 public:
  SharedMap(const std::filesystem::path& path, bool create) {
    const int flags = O_RDWR | O_CLOEXEC | (create ? O_CREAT | O_TRUNC : 0);
    UniqueFd fd(::open(path.c_str(), flags, 0600));
    if (!fd) fail("cannot open shared state", path, errno);
    if (create && ::ftruncate(fd.get(), sizeof(SharedState)) != 0) {
      fail("cannot size shared state", path, errno);
    }
    void* p = ::mmap(nullptr, sizeof(SharedState), PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
    if (p == MAP_FAILED) fail("cannot map shared state", path, errno);
    state_ = create ? new (p) SharedState() : static_cast<SharedState*>(p);
  }
  ~SharedMap() { ::munmap(state_, sizeof(SharedState)); }
  SharedMap(const SharedMap&) = delete;
  SharedMap& operator=(const SharedMap&) = delete;
  SharedState* operator->() const { return state_; }

 private:
  SharedState* state_ = nullptr;
};

// The parameters every worker reads from run.json.
struct WorkerConfig {
  std::string spec;
  std::uint32_t threads = 1;
  std::uint32_t first_worker_id = 0;
  std::uint8_t host = 0;
  std::int64_t hold_ns = 0;
  std::int64_t timeout_ns = 0;
  double shared_ratio = 0;
  std::uint64_t iterations = 0;   // 0: until stop / deadline
  std::uint64_t deadline_ns = 0;  // 0: none
  bool counter = false;
  std::string guard;
  Scenario scenario;               // kind none for lock runs
  bool tolerate_failures = false;  // a server nemesis runs: a failed acquire is an outcome
};

WorkerConfig read_config(const std::filesystem::path& run_dir, std::uint32_t process_index) {
  std::ifstream in(run_dir / "run.json");
  if (!in) fail("cannot read", run_dir / "run.json", errno ? errno : ENOENT);
  const nlohmann::json j = nlohmann::json::parse(in);
  WorkerConfig c;
  c.spec = j.at("spec").get<std::string>();
  c.threads = j.at("threads").get<std::uint32_t>();
  c.first_worker_id = j.at("first_worker_id").get<std::uint32_t>();
  c.host = j.at("host").get<std::uint8_t>();
  c.hold_ns = j.at("hold_ns").get<std::int64_t>();
  c.timeout_ns = j.at("timeout_ns").get<std::int64_t>();
  c.shared_ratio = j.at("shared_ratio").get<double>();
  c.iterations = j.at("iterations").get<std::uint64_t>();
  const auto duration = j.at("duration_ns").get<std::int64_t>();
  c.deadline_ns = duration > 0
                      ? j.at("start_ns").get<std::uint64_t>() + static_cast<std::uint64_t>(duration)
                      : 0;
  c.counter = j.at("counter").get<bool>();
  c.guard = j.at("guard").get<std::string>();
  // Odd-numbered processes reach the lock through the peer mount, when there is one.
  if (process_index % 2 == 1 && !j.value("peer_spec", "").empty()) {
    c.spec = j.at("peer_spec").get<std::string>();
    c.guard = j.at("peer_guard").get<std::string>();
  }
  c.scenario = scenario_of(c.spec);
  c.tolerate_failures = j.value("tolerate_failures", false);
  return c;
}

struct GuardContent {
  std::int64_t counter = 0;
  std::uint32_t worker = 0;
  std::uint32_t op = 0;
};

// The guarded file holds "COUNTER WORKER OP" padded with spaces to kGuardSize bytes. Parsed and
// formatted by hand: sscanf/snprintf cost more than the lock call they sit next to.
bool read_guard(int fd, GuardContent& g) {
  char buf[kGuardSize];
  const ssize_t n = ::pread(fd, buf, kGuardSize, 0);
  if (n <= 0) return false;
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

void write_guard(int fd, const GuardContent& g) {
  char buf[kGuardSize];
  std::memset(buf, ' ', sizeof buf);
  char* p = buf;
  char* const end = buf + kGuardSize - 1;  // the last byte is the newline
  p = std::to_chars(p, end, g.counter).ptr;
  p = std::to_chars(p + 1, end, g.worker).ptr;
  std::to_chars(p + 1, end, g.op);
  buf[kGuardSize - 1] = '\n';
  if (::pwrite(fd, buf, sizeof buf, 0) != static_cast<ssize_t>(sizeof buf)) {
    std::perror("locksmith worker: guard write");
  }
}

// Every worker loop's end: the controller said stop, the iterations are done, or time is up.
bool run_is_over(const WorkerConfig& cfg, const SharedState& shared, std::uint64_t done) {
  if (shared.stop.load(std::memory_order_relaxed) != 0) return true;
  if (cfg.iterations > 0 && done >= cfg.iterations) return true;
  return cfg.deadline_ns > 0 && monotonic_ns() >= cfg.deadline_ns;
}

void sleep_ns(std::int64_t ns) {
  if (ns <= 0) return;
  timespec ts{static_cast<time_t>(ns / 1000000000), static_cast<long>(ns % 1000000000)};
  while (::nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

// --- The atomic-write scenario ------------------------------------------------------------------
// Even-numbered workers publish new versions of one file, odd-numbered ones read it; every read
// is checked for a complete version (check_atomic_visibility). A version's write event is recorded
// before it is published, so a writer killed after publishing still accounts for what it wrote.

constexpr std::string_view kAtomicMagic = "locksmith-atomic";
constexpr std::size_t kAtomicPayload = 16384;  // several pages: a torn write is visible

// A self-checking version: "locksmith-atomic VERSION LENGTH\n" + LENGTH payload bytes + "\n".
std::string atomic_content(std::int64_t version) {
  std::string out(kAtomicMagic);
  out.append(" ").append(std::to_string(version)).append(" ");
  out.append(std::to_string(kAtomicPayload)).append("\n");
  for (std::size_t i = 0; i < kAtomicPayload; ++i) {
    out.push_back(static_cast<char>('a' + (static_cast<std::uint64_t>(version) * 31 + i) % 26));
  }
  out.push_back('\n');
  return out;
}

// The version `content` holds, or nullopt when it is not one complete version.
std::optional<std::int64_t> parse_atomic(const std::string& content) {
  long long version = -1;
  unsigned long length = 0;
  if (content.compare(0, kAtomicMagic.size(), kAtomicMagic) != 0) return std::nullopt;
  if (std::sscanf(content.c_str() + kAtomicMagic.size(), " %lld %lu", &version, &length) != 2) {
    return std::nullopt;
  }
  if (length != kAtomicPayload || content != atomic_content(version)) return std::nullopt;
  return version;
}

// Publishes `version` at `path`: durably and atomically, or (broken) in place.
void publish_version(const std::string& path, std::int64_t version, bool broken) {
  const std::string content = atomic_content(version);
  if (!broken) {
    AtomicOptions o;
    o.publish = Publish::replace;
    open_atomic(
        path, [&](AtomicFile& f) { f.write(content); }, o);
    return;
  }
  // The classic mistake: truncate and rewrite the file readers are reading.
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) fail("cannot open", path, errno);
  const std::size_t half = content.size() / 2;
  for (const auto& [at, n] : {std::pair{std::size_t{0}, half}, {half, content.size() - half}}) {
    // A slow writer: the torn state lasts long enough to be seen even on a loaded machine.
    sleep_ns(20000);
    if (::pwrite(fd.get(), content.data() + at, n, static_cast<off_t>(at)) < 0) {
      fail("cannot write", path, errno);
    }
  }
}

// Reads the whole file; false on ENOENT.
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

// --- The FileStore scenario ---------------------------------------------------------------------
// Even-numbered workers produce messages into a FileStore (self-checking content, as above),
// odd-numbered ones claim them with claim_next; check_exactly_once judges the history. After the
// run the controller drains new/ and records what is in cur/.

std::string message_name(std::int64_t id) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "m%019" PRId64, id);
  return buf;
}

std::optional<std::int64_t> message_id(std::string_view name) {
  std::int64_t id = 0;
  if (name.size() != 20 || name[0] != 'm') return std::nullopt;
  const auto [ptr, err] = std::from_chars(name.data() + 1, name.data() + name.size(), id);
  if (err != std::errc() || ptr != name.data() + name.size()) return std::nullopt;
  return id;
}

// The broken consumer: read, copy into cur/, then unlink — two consumers can both get one message.
std::optional<std::string> claim_by_copy(const FileStore& store) {
  const auto waiting = store.list(FileStore::kNew);
  if (waiting.empty()) return std::nullopt;
  const std::string name = waiting.front().filename().string();
  std::string content;
  if (!read_whole(waiting.front().string(), content)) return std::nullopt;  // gone meanwhile
  const std::string cur = (store.section_path(FileStore::kCur) / name).string();
  UniqueFd fd(::open(cur.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644));
  if (!fd) fail("cannot create", cur, errno);
  if (::write(fd.get(), content.data(), content.size()) < 0) fail("cannot write", cur, errno);
  std::this_thread::yield();  // the window in which another consumer reads the same message
  ::unlink(waiting.front().c_str());
  return name;
}

// The content of a taken message, checked: its id, or nullopt when partial or corrupt.
std::optional<std::int64_t> check_message(const FileStore& store, const std::string& name) {
  std::string content;
  const std::string path = (store.section_path(FileStore::kCur) / name).string();
  if (!read_whole(path, content)) return std::nullopt;
  const auto id = message_id(name);
  const auto version = parse_atomic(content);
  if (!id || !version || *version != *id) return std::nullopt;
  return id;
}

int filestore_worker(const WorkerConfig& cfg, Recorder& rec, Slot& me, const SharedState& shared,
                     std::uint32_t id) {
  const bool producer = id % 2 == 0;
  const bool broken = cfg.scenario.kind == ScenarioKind::broken_filestore;
  FileStore store(cfg.scenario.path, 0644, !broken);
  const std::string consumer = "worker-" + std::to_string(id);
  std::uint64_t done = 0;
  for (std::uint32_t op = 0;; ++op) {
    if (run_is_over(cfg, shared, done)) break;
    Event e;
    e.worker = id;
    e.op = op;
    e.host = cfg.host;
    if (producer) {
      e.type = EventType::put;
      e.value = (static_cast<std::int64_t>(id) + 1) * (std::int64_t{1} << 32) + op;
      me.state.store(kInExclusive, std::memory_order_seq_cst);  // the kill nemesis' target
      if (!rec.record(e)) break;
      FileStore::Writer w = store.create(message_name(e.value));
      w.write(atomic_content(e.value));
      w.commit();
      me.state.store(kOut, std::memory_order_seq_cst);
      sleep_ns(cfg.hold_ns);
    } else {
      me.state.store(kInExclusive, std::memory_order_seq_cst);
      const std::optional<std::string> name =
          broken ? claim_by_copy(store) : store.claim_next(consumer);
      if (!name) {
        me.state.store(kOut, std::memory_order_seq_cst);
        std::this_thread::yield();
        continue;
      }
      const auto got = check_message(store, *name);
      e.type = EventType::take;
      e.value = got ? *got : message_id(*name).value_or(-1);
      e.aux = got ? 0 : 1;
      const bool room = rec.record(e);
      me.state.store(kOut, std::memory_order_seq_cst);
      if (!room) break;
    }
    me.acquired.fetch_add(1, std::memory_order_relaxed);
    ++done;
  }
  return 0;
}

// After the run: claims what is left in new/ (as a consumer would) and records every message in
// cur/ — including those whose consumer was killed before it could record the take.
void drain_store(const Scenario& scenario, Recorder& controller, std::uint32_t worker,
                 std::uint8_t host) {
  FileStore store(scenario.path);
  Event e;
  e.worker = worker;
  e.host = host;
  while (const auto name = store.claim_next("locksmith-controller")) {
    const auto got = check_message(store, *name);
    e.time_ns = 0;
    e.type = EventType::take;
    e.value = got ? *got : message_id(*name).value_or(-1);
    e.aux = got ? 0 : 1;
    controller.record(e);
  }
  for (const auto& path : store.list(FileStore::kCur)) {
    const auto id = message_id(path.filename().string());
    if (!id) continue;  // not one of ours
    e.time_ns = 0;
    e.type = EventType::stored;
    e.value = *id;
    e.aux = 0;
    controller.record(e);
  }
}

// --- The fenced-resource scenario ---------------------------------------------------------------
// Holders of a lease write to a resource that checks their fencing token, as a database would:
// fenced.log in the run directory, made atomic by its own flock. The resource keeps the highest
// token it accepted (fenced.state) and rejects a write with a smaller one (the broken twin accepts
// everything). Each write gets the resource's next sequence number, so the checker sees the
// writes in the resource's own order, without clocks.

constexpr std::size_t kFenceStateSize = 48;

struct FencedWrite {
  std::int64_t seq = 0;
  bool accepted = false;
};

class FencedResource {
 public:
  FencedResource(const std::filesystem::path& run_dir, bool broken)
      : log_path_(run_dir / "fenced.log"), broken_(broken) {
    log_.reset(::open(log_path_.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
    if (!log_) fail("cannot open the fenced resource", log_path_, errno);
    const auto state = run_dir / "fenced.state";
    state_.reset(::open(state.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
    if (!state_) fail("cannot open the fenced resource's state", state, errno);
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

int fenced_worker(const std::filesystem::path& run_dir, const WorkerConfig& cfg, Recorder& rec,
                  SharedState& shared, std::uint32_t slot_index, std::uint32_t id) {
  Slot& me = shared.slots[slot_index];
  std::unique_ptr<Lockable> lock = open_harness_lock(cfg.scenario.path);
  FencedResource resource(run_dir, cfg.scenario.kind == ScenarioKind::broken_fenced);
  std::uint64_t done = 0;
  for (std::uint32_t op = 0;; ++op) {
    if (run_is_over(cfg, shared, done)) break;
    Event e;
    e.worker = id;
    e.op = op;
    e.host = cfg.host;
    e.type = EventType::invoke;
    e.value = cfg.timeout_ns;
    if (!rec.record(e)) break;
    me.attempts.fetch_add(1, std::memory_order_relaxed);
    const Clock::time_point deadline =
        cfg.timeout_ns <= 0 ? Clock::time_point::min()
                            : Clock::now() + std::chrono::nanoseconds(cfg.timeout_ns);
    const std::error_code ec = lock->acquire(LockMode::exclusive, deadline);
    e.time_ns = 0;
    if (ec) {
      e.type = ec == errc::busy      ? EventType::busy
               : ec == errc::timeout ? EventType::timeout
                                     : EventType::fail;
      e.value = ec.value();
      rec.record(e);
      if (e.type == EventType::fail && !cfg.tolerate_failures) {
        std::fprintf(stderr, "locksmith worker %u: acquire failed: %s\n", id, ec.message().c_str());
        return 4;
      }
      if (e.type == EventType::fail) sleep_ns(1000000);
      continue;
    }
    me.state.store(kInExclusive, std::memory_order_seq_cst);
    std::uint32_t writers = 0;
    const std::uint32_t n = std::min(shared.slots_used.load(), kMaxSlots);
    for (std::uint32_t i = 0; i < n; ++i) {
      if (i != slot_index && shared.slots[i].state.load(std::memory_order_seq_cst) != kOut) {
        ++writers;
      }
    }
    const auto fence = lock->describe().fence;
    if (!fence) {
      std::fprintf(stderr, "locksmith worker %u: '%s' gives no fencing token\n", id,
                   cfg.scenario.path.c_str());
      return 3;
    }
    e.type = EventType::ok;
    e.value = static_cast<std::int64_t>(*fence);
    e.witness_writers = writers;
    rec.record(e);
    me.acquired.fetch_add(1, std::memory_order_relaxed);
    // The pause nemesis stops holders here: a holder stopped past its TTL writes late.
    sleep_ns(cfg.hold_ns);
    const FencedWrite w = resource.write(e.value, id, op);
    e.time_ns = 0;
    e.type = EventType::fenced_write;
    e.aux = w.accepted ? w.seq : -w.seq;
    e.witness_writers = 0;
    rec.record(e);
    me.state.store(kOut, std::memory_order_seq_cst);
    e.time_ns = 0;
    e.type = EventType::release;
    e.value = -1;
    e.aux = 0;
    rec.record(e);
    const std::error_code rel = lock->release();
    e.time_ns = 0;
    e.type = rel ? EventType::release_fail : EventType::released;
    e.value = rel ? rel.value() : -1;
    rec.record(e);
    ++done;
  }
  return 0;
}

// --- One worker thread --------------------------------------------------------------------------

// The atomic-write scenario's loop (see above).
int atomic_worker(const WorkerConfig& cfg, Recorder& rec, Slot& me, const SharedState& shared,
                  std::uint32_t id) {
  const bool writer = id % 2 == 0;
  std::string content;
  bool seen_file = false;
  std::uint64_t done = 0;
  for (std::uint32_t op = 0;; ++op) {
    if (run_is_over(cfg, shared, done)) break;
    Event e;
    e.worker = id;
    e.op = op;
    e.host = cfg.host;
    if (writer) {
      e.type = EventType::write;
      e.value = (static_cast<std::int64_t>(id) + 1) * (std::int64_t{1} << 32) + op;
      me.state.store(kInExclusive, std::memory_order_seq_cst);  // the kill nemesis' target
      if (!rec.record(e)) break;
      publish_version(cfg.scenario.path, e.value, cfg.scenario.kind == ScenarioKind::broken_atomic);
      me.state.store(kOut, std::memory_order_seq_cst);
      sleep_ns(cfg.hold_ns);
    } else {
      const bool exists = read_whole(cfg.scenario.path, content);
      if (!exists && !seen_file) {
        std::this_thread::yield();
        continue;
      }
      seen_file = seen_file || exists;
      const auto version = exists ? parse_atomic(content) : std::nullopt;
      e.type = EventType::read;
      e.value = version.value_or(-1);
      e.aux = version ? 0 : 1;  // partial, corrupt, or vanished
      if (!rec.record(e)) break;
    }
    me.acquired.fetch_add(1, std::memory_order_relaxed);
    ++done;
  }
  return 0;
}

// One worker thread: loops acquire -> critical section -> release, recording every step.
int worker_thread(const std::filesystem::path& run_dir, const WorkerConfig& cfg,
                  SharedState& shared, std::uint32_t slot_index) {
  const std::uint32_t id = cfg.first_worker_id + slot_index;
  Slot& me = shared.slots[slot_index];
  const std::uint32_t used = shared.slots_used.load();
  std::unique_ptr<Lockable> lock;
  UniqueFd guard;
  if (cfg.scenario.kind != ScenarioKind::none) {
    try {
      Recorder rec(run_dir / ("history-" + std::to_string(id) + ".bin"),
                   cfg.iterations > 0 ? cfg.iterations * 8 + 64 : std::size_t{1} << 22);
      me.alive.store(1);
      if (cfg.scenario.kind == ScenarioKind::fenced ||
          cfg.scenario.kind == ScenarioKind::broken_fenced) {
        return fenced_worker(run_dir, cfg, rec, shared, slot_index, id);
      }
      if (cfg.scenario.kind == ScenarioKind::filestore ||
          cfg.scenario.kind == ScenarioKind::broken_filestore) {
        return filestore_worker(cfg, rec, me, shared, id);
      }
      return atomic_worker(cfg, rec, me, shared, id);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "locksmith worker %u: %s\n", id, e.what());
      return 3;
    }
  }
  try {
    lock = open_harness_lock(cfg.spec);
    if (cfg.counter) {
      guard.reset(::open(cfg.guard.c_str(), O_RDWR | O_CLOEXEC));
      if (!guard) fail("cannot open guard file", cfg.guard, errno);
      // NFS clients cache file data across lock/unlock of another file: reading the guarded file
      // through the page cache shows stale counters and hides other clients' witnesses. O_DIRECT
      // goes to the server every time (measured coherent on NFSv3 and v4.2; docs/NFS.md).
      struct statfs fs {};
      if (::fstatfs(guard.get(), &fs) == 0 && static_cast<long>(fs.f_type) == kNfsSuperMagic) {
        guard.reset(::open(cfg.guard.c_str(), O_RDWR | O_CLOEXEC | O_DIRECT));
        if (!guard) fail("cannot open guard file with O_DIRECT", cfg.guard, errno);
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "locksmith worker %u: %s\n", id, e.what());
    return 3;
  }
  const std::size_t capacity =
      cfg.iterations > 0 ? static_cast<std::size_t>(cfg.iterations) * 8 + 64 : std::size_t{1} << 22;
  Recorder rec(run_dir / ("history-" + std::to_string(id) + ".bin"), capacity);
  std::mt19937_64 rng(0x9E3779B97F4A7C15ULL ^ id);
  std::uniform_real_distribution<double> coin(0, 1);
  me.alive.store(1);

  std::uint64_t done = 0;
  bool gives_fences = true;  // until the first grant shows otherwise
  for (std::uint32_t op = 0;; ++op) {
    if (run_is_over(cfg, shared, done)) break;
    const bool shared_mode = cfg.shared_ratio > 0 && coin(rng) < cfg.shared_ratio;
    const LockMode mode = shared_mode ? LockMode::shared : LockMode::exclusive;
    const Mode m = shared_mode ? Mode::shared : Mode::exclusive;
    Event e;
    e.worker = id;
    e.op = op;
    e.mode = m;
    e.host = cfg.host;
    e.type = EventType::invoke;
    e.value = cfg.timeout_ns;
    if (!rec.record(e)) break;
    me.attempts.fetch_add(1, std::memory_order_relaxed);
    const Clock::time_point deadline =
        cfg.timeout_ns <= 0 ? Clock::time_point::min()
                            : Clock::now() + std::chrono::nanoseconds(cfg.timeout_ns);
    const std::error_code ec = lock->acquire(mode, deadline);
    e.time_ns = 0;
    if (ec) {
      e.type = ec == errc::busy      ? EventType::busy
               : ec == errc::timeout ? EventType::timeout
                                     : EventType::fail;
      e.value = ec.value();
      rec.record(e);
      // EDEADLK is the kernel refusing a wait that would deadlock (fcntl locks with several
      // waiting processes): an outcome to record, not a reason to stop.
      if (e.type == EventType::fail && ec != std::errc::resource_deadlock_would_occur &&
          !cfg.tolerate_failures) {
        std::fprintf(stderr, "locksmith worker %u: acquire failed: %s\n", id, ec.message().c_str());
        return 4;
      }
      if (e.type == EventType::fail && cfg.tolerate_failures) {
        sleep_ns(1000000);  // the server is down or dropped us: do not spin
      } else if (cfg.timeout_ns <= 0) {
        std::this_thread::yield();
      }
      continue;
    }
    // Clock-free evidence: publish ourselves, then look at everyone else.
    me.state.store(shared_mode ? kInShared : kInExclusive, std::memory_order_seq_cst);
    std::uint32_t writers = 0;
    std::uint32_t readers = 0;
    const std::uint32_t n = std::min(shared.slots_used.load(), kMaxSlots);
    for (std::uint32_t i = 0; i < n; ++i) {
      if (i == slot_index) continue;
      const std::uint32_t s = shared.slots[i].state.load(std::memory_order_seq_cst);
      writers += s == kInExclusive;
      readers += s == kInShared;
    }
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
    rec.record(e);
    me.acquired.fetch_add(1, std::memory_order_relaxed);

    std::int64_t counter = -1;
    std::int64_t overwritten = 0;
    if (cfg.counter && !shared_mode) {
      GuardContent g;
      read_guard(guard.get(), g);
      counter = g.counter;
      write_guard(guard.get(), {g.counter, id, op});
      sleep_ns(cfg.hold_ns);
      GuardContent again;
      if (!read_guard(guard.get(), again) || again.worker != id || again.op != op) {
        overwritten = 1;
      }
      write_guard(guard.get(), {counter + 1, id, op});
    } else {
      sleep_ns(cfg.hold_ns);
    }
    me.state.store(kOut, std::memory_order_seq_cst);
    e.time_ns = 0;
    e.type = EventType::release;
    e.value = counter;
    e.aux = overwritten;
    e.witness_writers = 0;
    e.witness_readers = 0;
    rec.record(e);
    const std::error_code rel = lock->release();
    e.time_ns = 0;
    e.aux = 0;
    e.type = rel ? EventType::release_fail : EventType::released;
    e.value = rel ? rel.value() : -1;
    rec.record(e);
    ++done;
  }
  (void)used;
  return 0;
}

pid_t spawn_worker(const std::string& exe, const std::filesystem::path& run_dir,
                   std::uint32_t process_index) {
  const std::string dir = run_dir.string();
  const std::string index = std::to_string(process_index);
  std::string arg0 = exe;
  std::string verb = "__worker";
  char* argv[] = {arg0.data(), verb.data(), const_cast<char*>(dir.c_str()),
                  const_cast<char*>(index.c_str()), nullptr};
  pid_t pid = 0;
  const int err = ::posix_spawn(&pid, exe.c_str(), nullptr, nullptr, argv, environ);
  if (err != 0) fail("cannot start worker", exe, err);
  return pid;
}

void draw_progress(double elapsed, double total, std::uint64_t acquired, bool done) {
  const int width = 30;
  const double frac = total > 0 ? std::min(1.0, elapsed / total) : 0;
  const int filled = static_cast<int>(frac * width);
  std::string bar(static_cast<std::size_t>(filled), '#');
  bar.append(static_cast<std::size_t>(width - filled), '.');
  std::fprintf(stderr, "\r[%s] %5.1fs elapsed, %5.1fs left, %" PRIu64 " critical sections%s",
               bar.c_str(), elapsed, std::max(0.0, total - elapsed), acquired, done ? "\n" : "");
}

// Every host writes ready-K once its guard file and run directory exist (host 0 first creates
// the guarded file), then waits until all hosts are ready. The directory is polled: on NFS
// nothing else can wake us.
void rendezvous(const StressOptions& o) {
  const auto ready = o.rendezvous / ("ready-" + std::to_string(o.host));
  if (std::error_code ec; std::filesystem::exists(ready, ec)) {
    throw std::runtime_error("'" + ready.string() +
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
      for (std::uint32_t k = 0; k < o.hosts; ++k) {
        seen += name == "ready-" + std::to_string(k) ? 1 : 0;
      }
    }
    if (seen == o.hosts) return;
    if (monotonic_ns() >= give_up) {
      throw std::runtime_error("rendezvous in '" + o.rendezvous.string() + "': only " +
                               std::to_string(seen) + " of " + std::to_string(o.hosts) +
                               " hosts checked in within the timeout");
    }
    sleep_ns(10000000);
  }
}

std::uint32_t max_holders_of(const std::string& spec) {
  if (spec.rfind("broken:", 0) == 0 || scenario_of(spec).kind != ScenarioKind::none) return 1;
  const LockSpec s = parse_lock_spec(spec);
  if (s.kind == "sem") return static_cast<std::uint32_t>(std::stoul(s.options.at("max")));
  return 1;
}

}  // namespace

std::filesystem::path make_temp_directory(std::string_view prefix) {
  const char* tmp = std::getenv("TMPDIR");
  std::string templ = std::string(tmp && *tmp ? tmp : "/tmp");
  templ.append("/").append(prefix).append("-XXXXXX");
  if (::mkdtemp(templ.data()) == nullptr) fail("cannot create a temporary directory", templ, errno);
  return templ;
}

int worker_main(const std::filesystem::path& run_dir, std::uint32_t process_index) {
  try {
    const WorkerConfig cfg = read_config(run_dir, process_index);
    SharedMap shared(run_dir / "state.bin", false);
    const std::uint32_t base = process_index * cfg.threads;
    if (base + cfg.threads > kMaxSlots) {
      std::fprintf(stderr, "locksmith worker: too many workers (max %u)\n", kMaxSlots);
      return 2;
    }
    if (cfg.threads == 1) return worker_thread(run_dir, cfg, *shared.operator->(), base);
    std::vector<int> codes(cfg.threads, 0);
    std::vector<std::thread> threads;
    for (std::uint32_t t = 0; t < cfg.threads; ++t) {
      threads.emplace_back(
          [&, t] { codes[t] = worker_thread(run_dir, cfg, *shared.operator->(), base + t); });
    }
    for (auto& t : threads) t.join();
    return *std::max_element(codes.begin(), codes.end());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "locksmith worker: %s\n", e.what());
    return 2;
  }
}

StressResult run_stress(const StressOptions& o) {
  if (o.workers == 0) throw std::invalid_argument("--workers must be at least 1");
  if (!(o.shared_ratio >= 0 && o.shared_ratio <= 1)) {  // written so that nan fails too
    throw std::invalid_argument("--shared-ratio must be a fraction from 0 to 1");
  }
  if (!o.duration && !o.iterations) throw std::invalid_argument("need a duration or iterations");
  const std::string kind = spec_kind(o.spec);
  std::uint32_t threads = o.threads;
  if (threads == 0) threads = kind == "broken-fcntl-threads" ? 4 : 1;
  const std::uint32_t max_holders = max_holders_of(o.spec);
  std::string target;
  bool shared_ok = true;
  const Scenario scenario = scenario_of(o.spec);
  const bool fenced =
      scenario.kind == ScenarioKind::fenced || scenario.kind == ScenarioKind::broken_fenced;
  if (fenced) {
    if (!o.rendezvous.empty()) {
      throw std::invalid_argument("the fenced scenario runs on one host (its resource is local)");
    }
    auto probe = open_harness_lock(scenario.path);  // validates the lease spec
    target = probe->describe().target;
    shared_ok = false;
  } else if (scenario.kind != ScenarioKind::none) {
    if (o.workers < 2) {
      throw std::invalid_argument(
          "the atomic-write scenario needs at least 2 workers "
          "(even ones write, odd ones read)");
    }
    target = scenario.path;
    shared_ok = false;
  } else {
    auto probe = open_harness_lock(o.spec);  // validates the spec before anything starts
    target = probe->describe().target;
    shared_ok = probe->supports_shared();
  }
  if (o.shared_ratio > 0 && !shared_ok) {
    throw std::invalid_argument("'" + o.spec + "' has no shared mode");
  }

  StressResult result;
  bool remove_dir = false;
  const bool multi_host = !o.rendezvous.empty();
  if (multi_host && o.host >= o.hosts) {
    throw std::invalid_argument("--host-index must be below --hosts");
  }
  const std::uint32_t first_worker_id = multi_host ? o.host * 1000u : 0u;
  if (multi_host) {
    result.run_dir = o.rendezvous / ("host-" + std::to_string(o.host));
    std::error_code ec;
    std::filesystem::remove_all(result.run_dir, ec);
    std::filesystem::create_directories(result.run_dir, ec);
    if (ec) fail("cannot create run directory", result.run_dir, ec.value());
  } else if (o.run_dir.empty()) {
    result.run_dir = make_temp_directory("locksmith-run");
    remove_dir = !o.keep_run_dir;
  } else {
    result.run_dir = o.run_dir;
    std::error_code ec;
    std::filesystem::create_directories(result.run_dir, ec);
    if (ec) fail("cannot create run directory", result.run_dir, ec.value());
  }
  struct Cleanup {
    std::filesystem::path dir;
    bool active;
    ~Cleanup() {
      std::error_code ec;
      if (active) std::filesystem::remove_all(dir, ec);
    }
  } cleanup{result.run_dir, remove_dir};

  const bool counter = max_holders == 1 && scenario.kind == ScenarioKind::none;
  // The guarded file sits next to a file lock; a lock that is not a file (redis://...) gets it in
  // the run directory, or in the rendezvous directory that every host shares.
  const bool file_lock = o.spec.find("://") == std::string::npos;
  const std::string guard = file_lock    ? target + ".guard"
                            : multi_host ? (o.rendezvous / "guard").string()
                                         : (result.run_dir / "guard").string();
  std::string peer_guard;
  if (!o.peer_spec.empty()) {
    if (spec_kind(o.peer_spec) != kind) {
      throw std::invalid_argument("the peer spec must be the same kind of lock as the spec");
    }
    peer_guard = open_harness_lock(o.peer_spec)->describe().target + ".guard";
  }
  if (counter && (!multi_host || o.host == 0)) {
    UniqueFd g(::open(guard.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644));
    if (!g) fail("cannot create guard file", guard, errno);
    write_guard(g.get(), {0, 0, 0});
  }

  // The nemesis kinds of this run, in the order they are listed in run.json.
  enum class Fault { kill, pause, redis_kill, redis_restart, redis_stop };
  std::vector<Fault> faults;
  std::string nemesis;
  for (const auto& [on, fault, name] :
       {std::tuple{o.nemesis_kill, Fault::kill, "kill"},
        {o.nemesis_pause, Fault::pause, "pause"},
        {o.nemesis_redis_kill, Fault::redis_kill, "redis-kill"},
        {o.nemesis_redis_restart, Fault::redis_restart, "redis-restart"},
        {o.nemesis_redis_stop, Fault::redis_stop, "redis-stop"}}) {
    if (!on) continue;
    faults.push_back(fault);
    nemesis += nemesis.empty() ? name : std::string(",") + name;
  }
  const bool server_faults =
      o.nemesis_redis_kill || o.nemesis_redis_restart || o.nemesis_redis_stop;
  std::unique_ptr<RedisNemesis> redis_nemesis;
  if (server_faults) {
    redis_nemesis = std::make_unique<RedisNemesis>(fenced ? scenario.path : o.spec);
  }
  if (fenced) {
    for (const char* name : {"fenced.log", "fenced.state"}) {
      const auto path = result.run_dir / name;
      UniqueFd f(::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644));
      if (!f) fail("cannot create the fenced resource", path, errno);
    }
  }
  // The run's clock starts once every host is here: meeting through NFS can take seconds (its
  // directory cache), which must not eat the run's duration.
  if (multi_host) rendezvous(o);
  const std::uint64_t start = monotonic_ns();
  const std::int64_t duration_ns =
      o.duration ? std::chrono::duration_cast<std::chrono::nanoseconds>(*o.duration).count() : 0;
  nlohmann::json j = {
      {"spec", o.spec},
      {"kind", kind},
      {"max_holders", max_holders},
      {"shared_mix", o.shared_ratio > 0},
      {"workers", o.workers * threads},
      {"threads", threads},
      {"timeout_ns",
       std::chrono::duration_cast<std::chrono::nanoseconds>(o.acquire_timeout).count()},
      {"duration_ns", duration_ns},
      {"iterations", o.iterations.value_or(0)},
      {"hold_ns", std::chrono::duration_cast<std::chrono::nanoseconds>(o.hold).count()},
      {"shared_ratio", o.shared_ratio},
      {"start_ns", start},
      {"nemesis", nemesis},
      {"counter", counter},
      {"fenced", fenced},
      {"tolerate_failures", server_faults},
      {"guard", guard},
      {"peer_spec", o.peer_spec},
      {"peer_guard", peer_guard},
      {"host", o.host},
      {"hosts", o.hosts},
      {"first_worker_id", first_worker_id},
  };
  {
    std::ofstream out(result.run_dir / "run.json");
    out << j.dump(2) << '\n';
    if (!out) fail("cannot write", result.run_dir / "run.json", errno);
  }
  SharedMap shared(result.run_dir / "state.bin", true);
  Recorder controller(result.run_dir / "history-controller.bin", 1 << 16);
  const bool store_scenario =
      scenario.kind == ScenarioKind::filestore || scenario.kind == ScenarioKind::broken_filestore;
  if (store_scenario && (!multi_host || o.host == 0)) FileStore(scenario.path).prepare();
  if (!store_scenario && !fenced && scenario.kind != ScenarioKind::none &&
      (!multi_host || o.host == 0)) {
    // Version 0 exists before any reader starts: from then on the file never vanishes.
    Event e;
    e.type = EventType::write;
    e.value = 0;
    e.host = o.host;
    e.worker = first_worker_id + kMaxSlots;  // the controller
    controller.record(e);
    publish_version(scenario.path, 0, false);
  }
  const std::string exe = o.worker_exe.empty() ? "/proc/self/exe" : o.worker_exe;

  struct Proc {
    pid_t pid;
    std::uint32_t index;
  };
  std::vector<Proc> procs;
  std::uint32_t next_index = 0;
  auto start_one = [&] {
    if ((next_index + 1) * threads > kMaxSlots) return false;
    shared->slots_used.store((next_index + 1) * threads);
    procs.push_back({spawn_worker(exe, result.run_dir, next_index), next_index});
    ++next_index;
    return true;
  };
  for (std::uint32_t i = 0; i < o.workers; ++i) start_one();

  std::mt19937 rng(static_cast<unsigned>(start));
  std::string worker_error;
  auto reap = [&](bool block) {
    for (auto it = procs.begin(); it != procs.end();) {
      int status = 0;
      const pid_t r = ::waitpid(it->pid, &status, block ? 0 : WNOHANG);
      if (r == it->pid) {
        if (WIFEXITED(status) && WEXITSTATUS(status) != 0 && worker_error.empty()) {
          worker_error = "worker process " + std::to_string(it->index) + " exited with status " +
                         std::to_string(WEXITSTATUS(status)) + " (see its message above)";
        } else if (WIFSIGNALED(status) && worker_error.empty()) {
          worker_error = "worker process " + std::to_string(it->index) + " died of signal " +
                         std::to_string(WTERMSIG(status));
        }
        it = procs.erase(it);
      } else {
        ++it;
      }
    }
  };
  auto record_for = [&](const Proc& p, EventType type) {
    for (std::uint32_t t = 0; t < threads; ++t) {
      Event e;
      e.type = type;
      e.worker = first_worker_id + p.index * threads + t;
      e.host = o.host;
      controller.record(e);
    }
  };
  auto stop_and_wait = [](pid_t pid) {
    ::kill(pid, SIGSTOP);
    int status = 0;
    return ::waitpid(pid, &status, WUNTRACED) == pid && WIFSTOPPED(status);
  };
  auto pick_holder = [&]() -> const Proc* {
    std::vector<const Proc*> holders;
    for (const auto& p : procs) {
      for (std::uint32_t t = 0; t < threads; ++t) {
        if (shared->slots[p.index * threads + t].state.load() != kOut) {
          holders.push_back(&p);
          break;
        }
      }
    }
    if (holders.empty()) return nullptr;
    return holders[std::uniform_int_distribution<std::size_t>(0, holders.size() - 1)(rng)];
  };

  std::string nemesis_error;
  const std::uint32_t controller_id = first_worker_id + kMaxSlots;
  auto record_fault = [&](EventType type, FaultKind what, std::size_t server) {
    Event e;
    e.type = type;
    e.worker = controller_id;
    e.host = o.host;
    e.value = static_cast<std::int64_t>(what);
    e.aux = redis_nemesis->port(server);
    controller.record(e);
  };
  // One fault of the Redis server(s); throws std::runtime_error naming the server.
  auto server_fault = [&](FaultKind what) {
    RedisNemesis& rn = *redis_nemesis;
    if (what == FaultKind::redis_kill) {
      record_fault(EventType::fault, what, 0);
      rn.kill_clients();
      return;
    }
    const std::size_t server = std::uniform_int_distribution<std::size_t>(0, rn.servers() - 1)(rng);
    if (what == FaultKind::redis_restart) {
      record_fault(EventType::fault, what, server);
      rn.restart(server, result.run_dir / ("redis-" + std::to_string(rn.port(server)) + ".log"));
      record_fault(EventType::fault_end, what, server);
      return;
    }
    const pid_t pid = rn.stop(server);
    record_fault(EventType::fault, what, server);
    sleep_ns(std::chrono::nanoseconds(o.pause_for).count());
    record_fault(EventType::fault_end, what, server);
    RedisNemesis::resume(pid);
  };

  const bool tty = o.progress && ::isatty(STDERR_FILENO);
  const double total_s = duration_ns > 0 ? static_cast<double>(duration_ns) / 1e9 : 0;
  auto acquired_total = [&] {
    std::uint64_t n = 0;
    const std::uint32_t used = std::min(shared->slots_used.load(), kMaxSlots);
    for (std::uint32_t i = 0; i < used; ++i) n += shared->slots[i].acquired.load();
    return n;
  };
  std::uint64_t next_nemesis =
      start + static_cast<std::uint64_t>(o.nemesis_interval.count()) * 1000000;
  std::uint64_t last_draw = 0;
  const std::uint64_t grace_ns =
      static_cast<std::uint64_t>(std::chrono::nanoseconds(o.acquire_timeout).count()) +
      10000000000ULL;
  std::uint64_t stop_at = 0;
  for (;;) {
    reap(false);
    const std::uint64_t now = monotonic_ns();
    if (duration_ns > 0 && now >= start + static_cast<std::uint64_t>(duration_ns) && stop_at == 0) {
      shared->stop.store(1);
      stop_at = now;
    }
    if (procs.empty()) break;
    if (stop_at != 0 && now - stop_at > grace_ns) {
      for (const auto& p : procs) ::kill(p.pid, SIGKILL);
      reap(true);
      if (worker_error.empty()) worker_error = "workers did not stop within the grace period";
      break;
    }
    if (stop_at == 0 && !faults.empty() && now >= next_nemesis) {
      next_nemesis = now + static_cast<std::uint64_t>(o.nemesis_interval.count()) * 1000000;
      const Fault fault =
          faults[std::uniform_int_distribution<std::size_t>(0, faults.size() - 1)(rng)];
      const bool kill_now = fault == Fault::kill;
      if (fault != Fault::kill && fault != Fault::pause) {
        try {
          server_fault(fault == Fault::redis_kill      ? FaultKind::redis_kill
                       : fault == Fault::redis_restart ? FaultKind::redis_restart
                                                       : FaultKind::redis_stop);
        } catch (const std::exception& e) {
          // Stop the run: its workers finish, then the error is reported.
          nemesis_error = e.what();
          shared->stop.store(1);
          stop_at = now;
        }
      } else if (const Proc* victim = pick_holder()) {
        const Proc v = *victim;
        if (stop_and_wait(v.pid)) {
          if (kill_now) {
            // Frozen, the victim still holds the lock: record its crash and clear its slots
            // before the kill lets anybody else in, so no one sees a dead holder.
            record_for(v, EventType::crash);
            for (std::uint32_t t = 0; t < threads; ++t) {
              shared->slots[v.index * threads + t].state.store(kOut);
            }
            ::kill(v.pid, SIGKILL);
            int status = 0;
            ::waitpid(v.pid, &status, 0);
            procs.erase(std::find_if(procs.begin(), procs.end(),
                                     [&](const Proc& p) { return p.pid == v.pid; }));
            start_one();
          } else {
            record_for(v, EventType::pause);
            sleep_ns(std::chrono::nanoseconds(o.pause_for).count());
            record_for(v, EventType::resume);
            ::kill(v.pid, SIGCONT);
          }
        }
      }
    }
    if (tty && now - last_draw > 100000000) {
      draw_progress(static_cast<double>(now - start) / 1e9, total_s, acquired_total(), false);
      last_draw = now;
    }
    sleep_ns(5000000);
  }
  if (tty)
    draw_progress(static_cast<double>(monotonic_ns() - start) / 1e9, total_s, acquired_total(),
                  true);
  result.elapsed_s = static_cast<double>(monotonic_ns() - start) / 1e9;
  if (!nemesis_error.empty()) throw std::runtime_error(nemesis_error);
  if (!worker_error.empty()) throw std::runtime_error(worker_error);

  if (counter && !multi_host) {  // other hosts may still be counting
    UniqueFd g(::open(guard.c_str(), O_RDONLY | O_CLOEXEC));
    GuardContent content;
    if (g && read_guard(g.get(), content)) result.final_counter = content.counter;
    ::unlink(guard.c_str());
  }
  if (store_scenario && !multi_host) {
    drain_store(scenario, controller, first_worker_id + kMaxSlots, o.host);
  }
  result.history = load_history({result.run_dir});
  result.checks = check_all(result.history, result.final_counter);
  return result;
}

}  // namespace locksmith::harness
