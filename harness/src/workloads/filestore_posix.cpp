// The FileStore workload: even-numbered workers produce messages into a FileStore (self-checking
// content), odd-numbered ones claim them with claim_next; check_exactly_once judges the history.
// After the run the controller drains new/ and records what is in cur/. The store directory
// must not exist or be empty (messages of an earlier run would read as "taken, never put"), and
// what the run made in it is removed afterwards.
#include <fcntl.h>
#include <unistd.h>

#include <charconv>
#include <cinttypes>
#include <cstdio>
#include <thread>

#include "content.hpp"
#include "locksmith/filestore.hpp"
#include "locksmith/unique_fd.hpp"
#include "workload.hpp"

namespace locksmith::harness::detail {
namespace {

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
  const auto version = parse_versioned(content);
  if (!id || !version || *version != *id) return std::nullopt;
  return id;
}

class FileStoreWorkload final : public Workload {
 public:
  explicit FileStoreWorkload(bool broken) : broken_(broken) {}
  const char* name() const noexcept override { return "filestore"; }

  void prepare(RunConfig& cfg, const StressOptions& o, const std::filesystem::path&) override {
    cfg.kind = spec_kind(o.spec);
    dir_ = dir_of(o.spec);
    if (cfg.processes * cfg.threads < 2) {
      throw std::invalid_argument(
          "the FileStore scenario needs at least 2 workers (even ones produce, odd ones consume)");
    }
    if (o.shared_ratio > 0) throw std::invalid_argument("'" + o.spec + "' has no shared mode");
    std::error_code ec;
    const auto type = std::filesystem::symlink_status(dir_, ec).type();
    if (type == std::filesystem::file_type::not_found) {
      created_dir_ = cfg.host == 0;
    } else if (type != std::filesystem::file_type::directory ||
               !std::filesystem::is_empty(dir_, ec) || ec) {
      if (cfg.host == 0) {
        throw std::invalid_argument(
            "'" + dir_.string() +
            "' is not an empty directory: the FileStore scenario needs a store of its own "
            "(messages of an earlier run would be judged as this run's)");
      }
    }
    if (cfg.host == 0) {
      made_ = true;
      FileStore(dir_).prepare();
    }
  }

  int work(WorkerContext& ctx) override {
    const bool producer = ctx.id % 2 == 0;
    FileStore store(dir_of(ctx.spec), 0644, !broken_);
    const std::string consumer = "worker-" + std::to_string(ctx.id);
    ctx.me().alive.store(1);
    std::uint64_t done = 0;
    for (std::uint32_t op = 0; !ctx.over(done); ++op) {
      Event e = ctx.event(op, producer ? EventType::put : EventType::take);
      if (producer) {
        e.value = unique_version(ctx.id, op);
        ctx.me().state.store(kInExclusive, std::memory_order_seq_cst);  // the kill nemesis' target
        if (!ctx.rec.record(e)) break;
        FileStore::Writer w = store.create(message_name(e.value));
        w.write(versioned_content(e.value));
        w.commit();
        ctx.me().state.store(kOut, std::memory_order_seq_cst);
        sleep_ns(ctx.cfg.hold_ns);
      } else {
        ctx.me().state.store(kInExclusive, std::memory_order_seq_cst);
        const std::optional<std::string> name =
            broken_ ? claim_by_copy(store) : store.claim_next(consumer);
        if (!name) {
          ctx.me().state.store(kOut, std::memory_order_seq_cst);
          std::this_thread::yield();
          continue;
        }
        const auto got = check_message(store, *name);
        e.value = got ? *got : message_id(*name).value_or(-1);
        e.aux = got ? 0 : 1;
        const bool room = ctx.rec.record(e);
        ctx.me().state.store(kOut, std::memory_order_seq_cst);
        if (!room) break;
      }
      ctx.me().acquired.fetch_add(1, std::memory_order_relaxed);
      ++done;
    }
    return 0;
  }

  // Claims what is left in new/ (as a consumer would) and records every message in cur/,
  // including those whose consumer was killed before it could record the take.
  void drain(const RunConfig& cfg, Recorder& controller, StressResult&) override {
    if (cfg.hosts > 1) return;
    FileStore store(dir_);
    Event e;
    e.worker = cfg.controller_id();
    e.host = cfg.host;
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

  void cleanup(const RunConfig&) noexcept override {
    if (!made_) return;
    std::error_code ec;
    if (created_dir_) {
      std::filesystem::remove_all(dir_, ec);
      return;
    }
    // The store was an empty directory of the user's: leave it empty again.
    for (std::filesystem::directory_iterator it(dir_, ec), end; !ec && it != end;
         it.increment(ec)) {
      std::error_code rm;
      std::filesystem::remove_all(it->path(), rm);
    }
  }

 private:
  std::filesystem::path dir_of(const std::string& spec) const { return scenario_of(spec).path; }

  bool broken_;
  std::filesystem::path dir_;
  bool made_ = false;
  bool created_dir_ = false;
};

}  // namespace

std::unique_ptr<Workload> make_filestore_workload(bool broken) {
  return std::make_unique<FileStoreWorkload>(broken);
}

}  // namespace locksmith::harness::detail
