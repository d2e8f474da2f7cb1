// What a mount is known to do to locks, and the saved probe verdicts per mount (mount.hpp).
#include "locksmith/mount.hpp"

#include <cerrno>
#include <fstream>
#include <map>
#include <mutex>
#include <span>
#include <sstream>
#include <utility>

#include "locksmith/atomic_file.hpp"
#include "locksmith/file_lock.hpp"

namespace locksmith {
namespace {

constexpr std::string_view kStoreMagic = "locksmith-verdicts 1";
constexpr std::size_t kKeyFields = 6;            // type, fsid, source, mount point, options, kernel
constexpr std::size_t kFields = kKeyFields + 5;  // primitive, verdict, time, reason, peer

// Tabs, newlines and backslashes inside a field, so that a record stays one line of tab-separated
// fields whatever a mount point or a reason holds.
std::string escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (const char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else {
      out += c;
    }
  }
  return out;
}

std::string unescape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\' || i + 1 == s.size()) {
      out += s[i];
      continue;
    }
    const char n = s[++i];
    out += n == 't' ? '\t' : n == 'n' ? '\n' : n == 'r' ? '\r' : n;
  }
  return out;
}

std::vector<std::string_view> split_tabs(std::string_view line) {
  std::vector<std::string_view> fields;
  for (;;) {
    const std::size_t tab = line.find('\t');
    fields.push_back(line.substr(0, tab));
    if (tab == std::string_view::npos) return fields;
    line.remove_prefix(tab + 1);
  }
}

}  // namespace

bool has_mount_option(std::string_view options, std::string_view name, std::string* value) {
  const bool with_value = !name.empty() && name.back() == '=';
  while (!options.empty()) {
    const std::size_t comma = options.find(',');
    const std::string_view opt = options.substr(0, comma);
    if (with_value ? opt.substr(0, name.size()) == name : opt == name) {
      if (value != nullptr) *value = std::string(opt.substr(with_value ? name.size() : opt.size()));
      return true;
    }
    if (comma == std::string_view::npos) break;
    options.remove_prefix(comma + 1);
  }
  return false;
}

bool is_fuse(const MountInfo& m) noexcept {
  constexpr std::uint64_t kFuseMagic = 0x65735546;
  return m.type == "fuse" || m.type == "fuseblk" || m.type.rfind("fuse.", 0) == 0 ||
         m.magic == kFuseMagic;
}

std::string known_local_only(const MountInfo& m, Backend backend) {
  if (backend != Backend::flock && backend != Backend::posix && backend != Backend::ofd) return "";
  const bool flock = backend == Backend::flock;
  if (m.type == "nfs" || m.type == "nfs4") {
    std::string local;
    if (has_mount_option(m.options, "local_lock=", &local) &&
        (local == "all" || (flock && local == "flock") || (!flock && local == "posix"))) {
      return "the NFS mount has local_lock=" + local + ": " + std::string(to_string(backend)) +
             " locks stay inside this client";
    }
    if (has_mount_option(m.options, "nolock")) {
      return "the NFS mount has nolock: locks stay inside this client";
    }
    return "";
  }
  if (m.type == "cifs" || m.type == "smb3") {
    if (has_mount_option(m.options, "nobrl")) {
      return "the cifs mount has nobrl: byte-range locks stay inside this client";
    }
    return "";
  }
  if (m.type == "fuse.sshfs") {
    return "sshfs forwards no locks to the server: they stay inside this mount";
  }
  if (is_fuse(m)) {
    return "a FUSE daemon (" + m.source +
           ") forwards locks only if it implements them, which the mount table does not show";
  }
  return "";
}

VerdictStore::VerdictStore(std::filesystem::path file) : file_(std::move(file)) {}

std::shared_ptr<const VerdictStore> VerdictStore::cached(const std::filesystem::path& file) {
  struct Seen {
    bool exists = false;
    std::uintmax_t size = 0;
    std::filesystem::file_time_type mtime;
    std::shared_ptr<const VerdictStore> store;
  };
  static std::mutex mu;
  static auto* seen = new std::map<std::filesystem::path, Seen>();  // never destroyed
  std::error_code ec;
  const std::filesystem::file_status status = std::filesystem::status(file, ec);
  const bool exists = !ec && std::filesystem::exists(status);
  const auto mtime = exists ? std::filesystem::last_write_time(file, ec) : decltype(Seen::mtime)();
  const std::uintmax_t size = exists && !ec ? std::filesystem::file_size(file, ec) : 0;
  const bool known = !ec || !exists;  // a missing file is known too: an empty store
  const std::lock_guard<std::mutex> hold(mu);
  Seen& s = (*seen)[file];
  if (s.store && known && s.exists == exists && s.size == size && s.mtime == mtime) return s.store;
  auto store = std::make_shared<VerdictStore>(file);
  if (!known || store->load()) store = std::make_shared<VerdictStore>(file);  // nothing usable
  if (known) s = {exists, size, mtime, store};
  return store;
}

std::string VerdictStore::key_of(const MountInfo& m) {
  std::string key;
  for (const std::string* f : {&m.type, &m.fsid, &m.source, &m.mount_point, &m.options}) {
    key += escape(*f) + '\t';
  }
  return key + escape(kernel_release());
}

std::error_code VerdictStore::load() {
  records_.clear();
  dropped_ = 0;
  std::ifstream in(file_);
  if (!in) {
    const int err = errno;
    std::error_code exists_ec;
    if (!std::filesystem::exists(file_, exists_ec) && !exists_ec) return {};  // nothing saved
    return {err != 0 ? err : EIO, std::generic_category()};
  }
  std::string line;
  if (!std::getline(in, line) || line != kStoreMagic) {
    return std::make_error_code(std::errc::illegal_byte_sequence);  // not our file: keep it
  }
  while (std::getline(in, line)) {
    const auto f = split_tabs(line);
    std::int64_t at = 0;
    if (f.size() != kFields || !(std::istringstream(std::string(f[kKeyFields + 2])) >> at)) {
      ++dropped_;
      continue;
    }
    std::string key;
    for (std::size_t i = 0; i < kKeyFields; ++i) {
      key += std::string(f[i]);
      if (i + 1 < kKeyFields) key += '\t';
    }
    records_.push_back({std::move(key),
                        {unescape(f[kKeyFields]), unescape(f[kKeyFields + 1]), at,
                         unescape(f[kKeyFields + 3]), unescape(f[kKeyFields + 4])}});
  }
  if (in.bad()) return std::make_error_code(std::errc::io_error);
  return {};
}

std::optional<SavedVerdict> VerdictStore::find(const MountInfo& m,
                                               std::string_view primitive) const {
  if (records_.empty()) return std::nullopt;  // the usual case: nothing saved, no key to build
  const std::string key = key_of(m);
  for (const Record& r : records_) {
    if (r.key == key && r.verdict.primitive == primitive) return r.verdict;
  }
  return std::nullopt;
}

void VerdictStore::put(const MountInfo& m, const SavedVerdict& v) {
  const std::string key = key_of(m);
  for (Record& r : records_) {
    if (r.key == key && r.verdict.primitive == v.primitive) {
      r.verdict = v;
      return;
    }
  }
  records_.push_back({key, v});
}

std::error_code VerdictStore::save() const {
  std::error_code ec;
  if (file_.has_parent_path()) std::filesystem::create_directories(file_.parent_path(), ec);
  if (ec) return ec;
  AtomicOptions o;
  o.publish = Publish::replace;
  AtomicFile out = AtomicFile::create(file_, o, ec);
  if (ec) return ec;
  std::string text(kStoreMagic);
  text += '\n';
  for (const Record& r : records_) {
    text += r.key + '\t' + escape(r.verdict.primitive) + '\t' + escape(r.verdict.verdict) + '\t' +
            std::to_string(r.verdict.saved_at) + '\t' + escape(r.verdict.reason) + '\t' +
            escape(r.verdict.peer) + '\n';
  }
  if ((ec = out.write(std::as_bytes(std::span(text.data(), text.size()))))) return ec;
  return out.commit(std::nothrow);
}

std::error_code VerdictStore::update(const MountInfo& m, const std::vector<SavedVerdict>& vs) {
  std::error_code ec;
  if (file_.has_parent_path()) std::filesystem::create_directories(file_.parent_path(), ec);
  if (ec) return ec;
  // Probes of two mounts may save at once: one read-modify-write at a time.
  std::filesystem::path lock_path = file_;
  lock_path += ".lock";
  FileLock guard(lock_path);
  if ((ec = guard.acquire(LockMode::exclusive, Clock::now() + std::chrono::seconds(30)))) {
    return ec;
  }
  if ((ec = load())) return ec;
  for (const SavedVerdict& v : vs) put(m, v);
  ec = save();
  (void)guard.release();
  return ec;
}

}  // namespace locksmith
