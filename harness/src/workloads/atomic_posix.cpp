// The atomic-write workload: even-numbered workers publish new versions of one file, odd-numbered
// ones read it; every read is checked for a complete version (check_atomic_visibility). A
// version's write event is recorded before it is published, so a writer killed after publishing
// still accounts for what it wrote. The file must not exist before the run (it is the run's, and
// it is removed afterwards with the temporary files of killed writers).
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <thread>

#include "content.hpp"
#include "locksmith/atomic_file.hpp"
#include "locksmith/unique_fd.hpp"
#include "workload.hpp"

namespace locksmith::harness::detail {
namespace {

// Publishes `version` at `path`: durably and atomically, or (broken) in place.
void publish_version(const std::string& path, std::int64_t version, bool broken) {
  const std::string content = versioned_content(version);
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

class AtomicWorkload final : public Workload {
 public:
  explicit AtomicWorkload(bool broken) : broken_(broken) {}
  const char* name() const noexcept override { return "atomic"; }

  void prepare(RunConfig& cfg, const StressOptions& o, const std::filesystem::path&) override {
    cfg.kind = spec_kind(o.spec);
    path_ = path_of(o.spec);
    if (cfg.processes * cfg.threads < 2) {
      throw std::invalid_argument(
          "the atomic-write scenario needs at least 2 workers (even ones write, odd ones read)");
    }
    if (o.shared_ratio > 0) throw std::invalid_argument("'" + o.spec + "' has no shared mode");
    std::error_code ec;
    if (std::filesystem::symlink_status(path_, ec).type() !=
        std::filesystem::file_type::not_found) {
      throw std::invalid_argument("'" + path_.string() +
                                  "' exists: the atomic-write scenario writes and then removes "
                                  "its file, so give a path that does not exist yet");
    }
    leftovers_.snapshot(path_.parent_path().empty() ? "." : path_.parent_path());
    if (cfg.host == 0) {
      made_ = true;
      publish_version(path_.string(), 0, false);
    }
  }

  void start(const RunConfig& cfg, Recorder& controller) override {
    if (cfg.host != 0) return;
    // Version 0 exists before any reader starts: from then on the file never vanishes.
    Event e;
    e.type = EventType::write;
    e.value = 0;
    e.host = cfg.host;
    e.worker = cfg.controller_id();
    controller.record(e);
  }

  int work(WorkerContext& ctx) override {
    const std::string path = path_of(ctx.spec);
    const bool writer = ctx.id % 2 == 0;
    std::string content;
    bool seen_file = false;
    ctx.me().alive.store(1);
    std::uint64_t done = 0;
    for (std::uint32_t op = 0; !ctx.over(done); ++op) {
      Event e = ctx.event(op, writer ? EventType::write : EventType::read);
      if (writer) {
        e.value = unique_version(ctx.id, op);
        ctx.me().state.store(kInExclusive, std::memory_order_seq_cst);  // the kill nemesis' target
        if (!ctx.rec.record(e)) break;
        publish_version(path, e.value, broken_);
        ctx.me().state.store(kOut, std::memory_order_seq_cst);
        sleep_ns(ctx.cfg.hold_ns);
      } else {
        const bool exists = read_whole(path, content);
        if (!exists && !seen_file) {
          std::this_thread::yield();
          continue;
        }
        seen_file = seen_file || exists;
        const auto version = exists ? parse_versioned(content) : std::nullopt;
        e.value = version.value_or(-1);
        e.aux = version ? 0 : 1;  // partial, corrupt, or vanished
        if (!ctx.rec.record(e)) break;
      }
      ctx.me().acquired.fetch_add(1, std::memory_order_relaxed);
      ++done;
    }
    return 0;
  }

  void cleanup(const RunConfig&) noexcept override {
    if (!made_) return;
    const std::string base = path_.filename().string();
    leftovers_.remove_new({base, "." + base});  // the file and killed writers' temporaries
  }

 private:
  std::string path_of(const std::string& spec) const { return scenario_of(spec).path; }

  bool broken_;
  std::filesystem::path path_;
  bool made_ = false;
  Leftovers leftovers_;
};

}  // namespace

std::unique_ptr<Workload> make_atomic_workload(bool broken) {
  return std::make_unique<AtomicWorkload>(broken);
}

}  // namespace locksmith::harness::detail
