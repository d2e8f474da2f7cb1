#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <system_error>

#include "locksmith/harness/history.hpp"
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
  }
  return "unknown";
}

std::uint64_t monotonic_ns() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ULL +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

Recorder::Recorder(const std::filesystem::path& path, std::size_t capacity) : capacity_(capacity) {
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644));
  if (!fd) fail("cannot create history file", path, errno);
  const auto bytes = static_cast<off_t>(capacity * sizeof(Event));
  if (::ftruncate(fd.get(), bytes) != 0) fail("cannot size history file", path, errno);
  void* map = ::mmap(nullptr, static_cast<std::size_t>(bytes), PROT_READ | PROT_WRITE, MAP_SHARED,
                     fd.get(), 0);
  if (map == MAP_FAILED) fail("cannot map history file", path, errno);
  events_ = static_cast<Event*>(map);
}

Recorder::~Recorder() {
  if (events_ != nullptr) ::munmap(events_, capacity_ * sizeof(Event));
}

bool Recorder::record(Event e) noexcept {
  if (size_ >= capacity_) return false;
  if (e.time_ns == 0) e.time_ns = monotonic_ns();
  e.magic = 0;
  Event& slot = events_[size_++];
  std::memcpy(&slot, &e, sizeof(Event));
  // The magic byte goes last: a record cut short by SIGKILL is recognisably incomplete.
  std::atomic_ref<std::uint8_t>(slot.magic).store(kEventMagic, std::memory_order_release);
  return true;
}

std::vector<Event> load_events(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) fail("cannot open history file", file, errno ? errno : ENOENT);
  std::vector<Event> out;
  Event e;
  while (in.read(reinterpret_cast<char*>(&e), sizeof(Event))) {
    if (e.magic != kEventMagic) break;  // end of the recorded part (or a torn last record)
    out.push_back(e);
  }
  return out;
}

History load_history(const std::vector<std::filesystem::path>& dirs) {
  History h;
  bool have_info = false;
  for (const auto& dir : dirs) {
    std::error_code ec;
    if (!std::filesystem::is_directory(dir, ec)) {
      fail("not a history directory", dir, ec ? ec.value() : ENOTDIR);
    }
    const auto info_path = dir / "run.json";
    if (!have_info && std::filesystem::exists(info_path)) {
      std::ifstream in(info_path);
      nlohmann::json j;
      try {
        in >> j;
        RunInfo& i = h.info;
        i.spec = j.value("spec", "");
        i.kind = j.value("kind", "");
        i.max_holders = j.value("max_holders", 1u);
        i.shared_mix = j.value("shared_mix", false);
        i.workers = j.value("workers", 0u);
        i.timeout_ns = j.value("timeout_ns", static_cast<std::int64_t>(-1));
        i.duration_ns = j.value("duration_ns", static_cast<std::int64_t>(0));
        i.start_ns = j.value("start_ns", static_cast<std::uint64_t>(0));
        i.nemesis = j.value("nemesis", "");
        i.counter = j.value("counter", true);
        i.fenced = j.value("fenced", false);
      } catch (const nlohmann::json::exception& e) {
        throw std::runtime_error("malformed '" + info_path.string() + "': " + e.what());
      }
      have_info = true;
    }
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
      const std::string name = entry.path().filename().string();
      if (name.rfind("history-", 0) == 0 && entry.path().extension() == ".bin") {
        auto events = load_events(entry.path());
        h.events.insert(h.events.end(), events.begin(), events.end());
      }
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
