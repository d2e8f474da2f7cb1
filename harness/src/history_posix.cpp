#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <optional>
#include <stdexcept>
#include <system_error>

#include "locksmith/harness/history.hpp"
#include "locksmith/harness/run_config.hpp"
#include "locksmith/unique_fd.hpp"

namespace locksmith::harness {
namespace {

[[noreturn]] void fail(const std::string& what, const std::filesystem::path& path, int err) {
  throw std::system_error(err, std::generic_category(), what + " '" + path.string() + "'");
}

}  // namespace

const char* to_string(EventType t) noexcept {
  switch (t) {
    case EventType::invoke:
      return "invoke";
    case EventType::ok:
      return "ok";
    case EventType::busy:
      return "busy";
    case EventType::timeout:
      return "timeout";
    case EventType::fail:
      return "fail";
    case EventType::release:
      return "release";
    case EventType::released:
      return "released";
    case EventType::release_fail:
      return "release_fail";
    case EventType::crash:
      return "crash";
    case EventType::pause:
      return "pause";
    case EventType::resume:
      return "resume";
    case EventType::read:
      return "read";
    case EventType::write:
      return "write";
    case EventType::put:
      return "put";
    case EventType::take:
      return "take";
    case EventType::stored:
      return "stored";
    case EventType::fenced_write:
      return "fenced_write";
    case EventType::fault:
      return "fault";
    case EventType::fault_end:
      return "fault_end";
    case EventType::lost:
      return "lost";
    case EventType::run_end:
      return "run_end";
    case EventType::header:
      return "header";
  }
  return "unknown";
}

std::uint64_t monotonic_ns() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ULL +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

namespace {

std::pair<std::int64_t, std::int64_t> id_halves(const std::string& run_id) {
  if (run_id.size() != 32) throw std::invalid_argument("run id '" + run_id + "' is not 32 hex");
  const auto half = [&](std::size_t at) {
    return static_cast<std::int64_t>(std::stoull(run_id.substr(at, 16), nullptr, 16));
  };
  return {half(0), half(16)};
}

std::string id_of(std::int64_t a, std::int64_t b) {
  char buf[33];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(a),
                static_cast<unsigned long long>(b));
  return buf;
}

}  // namespace

Recorder::Recorder(const std::filesystem::path& path, std::size_t capacity,
                   const HistoryOwner& owner)
    : capacity_(capacity + 1) {
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644));
  if (!fd) fail("cannot create history file", path, errno);
  const auto bytes = static_cast<off_t>(capacity_ * sizeof(Event));
  if (::ftruncate(fd.get(), bytes) != 0) fail("cannot size history file", path, errno);
  fd_ = std::move(fd);
  // Blocks are reserved a chunk ahead of the records (see record()): a full disk then fails a
  // reservation, cleanly, instead of raising SIGBUS at a store into the mapping.
  if (const int err = reserve(); err != 0) {
    ::unlink(path.c_str());
    fail("cannot allocate history file", path, err);
  }
  void* map = ::mmap(nullptr, static_cast<std::size_t>(bytes), PROT_READ | PROT_WRITE, MAP_SHARED,
                     fd_.get(), 0);
  if (map == MAP_FAILED) fail("cannot map history file", path, errno);
  events_ = static_cast<Event*>(map);
  Event h;
  h.type = EventType::header;
  const auto [a, b] = id_halves(owner.run_id);
  h.value = a;
  h.aux = b;
  h.time_ns = capacity;
  h.op = kHistoryFormat;
  h.host = owner.host;
  h.worker = owner.worker;
  record(h);
}

Recorder::~Recorder() {
  if (events_ != nullptr) ::munmap(events_, capacity_ * sizeof(Event));
}

int Recorder::reserve() noexcept {
  const std::size_t upto = std::min(capacity_, allocated_ + kReserveChunk);
  const int err = ::posix_fallocate(fd_.get(), static_cast<off_t>(allocated_ * sizeof(Event)),
                                    static_cast<off_t>((upto - allocated_) * sizeof(Event)));
  if (err != 0 && err != EOPNOTSUPP && err != EINVAL) return err;
  allocated_ = upto;
  return 0;
}

bool Recorder::record(Event e) noexcept {
  if (size_ >= capacity_ || error_ != 0) return false;
  if (size_ >= allocated_) {
    error_ = reserve();
    if (error_ != 0) return false;
  }
  if (e.time_ns == 0) e.time_ns = monotonic_ns();
  e.magic = 0;
  e.seq = static_cast<std::uint32_t>(size_);
  Event& slot = events_[size_++];
  std::memcpy(&slot, &e, sizeof(Event));
  // The magic byte goes last: a record cut short by SIGKILL is recognisably incomplete.
  std::atomic_ref<std::uint8_t>(slot.magic).store(kEventMagic, std::memory_order_release);
  return true;
}

std::vector<Event> load_events(const std::filesystem::path& file, HistoryOwner* owner) {
  // O_NONBLOCK: a FIFO put in place of a history must not hang us; it is refused below.
  UniqueFd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
  if (!fd) {
    const int err = errno;
    throw HistoryError("cannot open history file '" + file.string() + "': " + std::strerror(err));
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    throw HistoryError("history file '" + file.string() + "' is not a regular file");
  }
  const auto size = static_cast<std::uint64_t>(st.st_size);
  Event h;
  if (size < sizeof(Event) ||
      ::pread(fd.get(), &h, sizeof h, 0) != static_cast<ssize_t>(sizeof h) ||
      h.magic != kEventMagic || h.type != EventType::header || h.seq != 0) {
    throw HistoryError("'" + file.string() + "' is not a locksmith history (no header record)");
  }
  if (h.op != kHistoryFormat) {
    throw HistoryError("'" + file.string() + "' is history format " + std::to_string(h.op) +
                       "; this locksmith reads format " + std::to_string(kHistoryFormat));
  }
  if (size != (h.time_ns + 1) * sizeof(Event)) {
    throw HistoryError(
        "history file '" + file.string() + "' is truncated or extended: " + std::to_string(size) +
        " bytes, its header says " + std::to_string((h.time_ns + 1) * sizeof(Event)));
  }
  if (owner != nullptr) *owner = {id_of(h.value, h.aux), h.host, h.worker};
  std::vector<Event> out;
  std::vector<Event> buf(4096);
  std::uint64_t index = 1;
  bool ended = false;
  for (off_t at = sizeof(Event); !ended && static_cast<std::uint64_t>(at) < size;) {
    const ssize_t n = ::pread(fd.get(), buf.data(), buf.size() * sizeof(Event), at);
    if (n < 0) {
      const int err = errno;
      throw HistoryError("cannot read history file '" + file.string() + "': " + std::strerror(err));
    }
    if (n == 0) break;
    const std::size_t count = static_cast<std::size_t>(n) / sizeof(Event);
    for (std::size_t i = 0; i < count; ++i, ++index) {
      const Event& e = buf[i];
      if (e.magic != kEventMagic) {  // the end of the recorded part (or a torn last record)
        ended = true;
        break;
      }
      const auto type = static_cast<unsigned>(e.type);
      if (e.seq != index || type < 1 || type > static_cast<unsigned>(EventType::run_end) ||
          e.host != h.host) {
        throw HistoryError("history file '" + file.string() + "' is corrupt at record " +
                           std::to_string(index));
      }
      out.push_back(e);
    }
    at += static_cast<off_t>(count * sizeof(Event));
  }
  return out;
}

namespace {

// One host's directory: its run description and the events of every history it must hold.
void load_host(const std::filesystem::path& dir, History& h, std::optional<RunConfig>& first,
               std::vector<bool>& hosts_seen) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    throw HistoryError("'" + dir.string() + "' is not a history directory" +
                       (ec ? ": " + ec.message() : std::string()));
  }
  RunConfig cfg;
  try {
    cfg = RunConfig::load(dir / "run.json");
  } catch (const std::exception& e) {
    throw HistoryError(e.what());
  }
  if (!first) {
    first = cfg;
    hosts_seen.assign(cfg.hosts, false);
    h.info = cfg.info();
  } else if (cfg.run_id != first->run_id) {
    throw HistoryError("'" + dir.string() + "' holds run " + cfg.run_id + ", not run " +
                       first->run_id + ": histories of different runs cannot be checked together");
  }
  if (cfg.host >= hosts_seen.size() || hosts_seen[cfg.host]) {
    throw HistoryError("'" + dir.string() + "': host " + std::to_string(cfg.host) +
                       " of this run was given twice");
  }
  hosts_seen[cfg.host] = true;
  std::map<std::uint32_t, std::filesystem::path> files;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.rfind("history-", 0) != 0 || it->path().extension() != ".bin") continue;
    HistoryOwner owner;
    auto events = load_events(it->path(), &owner);
    if (owner.run_id != cfg.run_id || owner.host != cfg.host) {
      throw HistoryError("'" + it->path().string() + "' belongs to run " + owner.run_id + " host " +
                         std::to_string(owner.host) + ", not to this directory's run " +
                         cfg.run_id + " host " + std::to_string(cfg.host));
    }
    if (!files.emplace(owner.worker, it->path()).second) {
      throw HistoryError("worker " + std::to_string(owner.worker) + " has two histories: '" +
                         files[owner.worker].string() + "' and '" + it->path().string() + "'");
    }
    for (auto& e : events) {
      if (e.worker != owner.worker && owner.worker != cfg.controller_id()) {
        throw HistoryError("'" + it->path().string() + "' holds events of worker " +
                           std::to_string(e.worker) + ": corrupt");
      }
    }
    h.events.insert(h.events.end(), events.begin(), events.end());
  }
  if (ec) throw HistoryError("cannot list '" + dir.string() + "': " + ec.message());
  const auto controller = files.find(cfg.controller_id());
  if (controller == files.end()) {
    throw HistoryError("'" + dir.string() + "' has no controller history: the run is incomplete");
  }
  // The controller's last record says how many worker ids this host used.
  std::int64_t used = -1;
  for (const auto& e : h.events) {
    if (e.type == EventType::run_end && e.host == cfg.host) used = e.value;
  }
  if (used < 0) {
    throw HistoryError("'" + controller->second.string() +
                       "' has no end-of-run record: the controller did not finish the run");
  }
  for (std::uint32_t w = 0; w < static_cast<std::uint32_t>(used); ++w) {
    if (!files.count(cfg.first_worker_id + w)) {
      throw HistoryError("'" + dir.string() + "': the history of worker " +
                         std::to_string(cfg.first_worker_id + w) + " is missing (the run used " +
                         std::to_string(used) + " workers on host " + std::to_string(cfg.host) +
                         ")");
    }
  }
  if (files.size() != static_cast<std::size_t>(used) + 1) {
    throw HistoryError("'" + dir.string() + "' holds " + std::to_string(files.size() - 1) +
                       " worker histories; the run used " + std::to_string(used));
  }
}

}  // namespace

History load_history(const std::vector<std::filesystem::path>& dirs, bool all_hosts) {
  History h;
  std::optional<RunConfig> first;
  std::vector<bool> hosts_seen;
  for (const auto& dir : dirs) load_host(dir, h, first, hosts_seen);
  if (!first) throw HistoryError("no history directory given");
  for (std::size_t k = 0; k < hosts_seen.size() && all_hosts; ++k) {
    if (!hosts_seen[k]) {
      throw HistoryError("the run had " + std::to_string(hosts_seen.size()) +
                         " hosts; the histories of host " + std::to_string(k) + " are missing");
    }
  }
  // Stable: events of one worker with equal timestamps keep the order they were recorded in.
  std::stable_sort(h.events.begin(), h.events.end(), [](const Event& a, const Event& b) {
    if (a.host != b.host) return a.host < b.host;
    if (a.time_ns != b.time_ns) return a.time_ns < b.time_ns;
    return a.worker < b.worker;
  });
  return h;
}

}  // namespace locksmith::harness
