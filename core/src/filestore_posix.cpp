// FileStore on POSIX: tmp/new/cur hand-off by rename(2). Everything is here (no portable part):
// the store is rename and O_EXCL semantics throughout.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <utility>

#include "file_ops.hpp"
#include "locksmith/error.hpp"
#include "locksmith/filestore.hpp"
#include "sys_posix.hpp"

namespace locksmith {
namespace {

constexpr int kCopyNameAttempts = 16;

std::error_code invalid_name() noexcept {
  return std::make_error_code(std::errc::invalid_argument);
}

std::error_code check_name(std::string_view name) noexcept {
  return FileStore::valid_name(name) ? std::error_code{} : invalid_name();
}

std::error_code check_names(std::initializer_list<std::string_view> names) noexcept {
  for (std::string_view n : names) {
    if (auto ec = check_name(n)) return ec;
  }
  return {};
}

std::filesystem::path entry(const std::filesystem::path& root, std::string_view section,
                            std::string_view name) {
  std::filesystem::path p = root / section;
  p /= name;
  return p;
}

// Directory bits from file bits: x wherever r is set.
mode_t directory_mode(unsigned permissions) noexcept {
  const unsigned bits = permissions & 0777;
  return static_cast<mode_t>(bits | ((bits & 0444) >> 2));
}

std::error_code make_directory(const std::filesystem::path& dir, mode_t mode,
                               bool& created) noexcept {
  created = false;
  if (::mkdir(dir.c_str(), mode) == 0) {
    created = true;
    return {};
  }
  const int err = errno;
  if (err != EEXIST) return {err, std::generic_category()};
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) return detail::last_error();
  if (!S_ISDIR(st.st_mode)) return std::make_error_code(std::errc::not_a_directory);
  return {};
}

// rename that never replaces `to`; falls back to rename(2) where the filesystem lacks
// RENAME_NOREPLACE (EINVAL) or the kernel lacks renameat2 (ENOSYS).
std::error_code rename_no_replace(const std::filesystem::path& from,
                                  const std::filesystem::path& to) noexcept {
#if defined(RENAME_NOREPLACE)
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) return {};
  const int err = errno;
  if (err != EINVAL && err != ENOSYS) return {err, std::generic_category()};
#endif
  if (::rename(from.c_str(), to.c_str()) != 0) return detail::last_error();
  return {};
}

std::error_code read_all(const std::filesystem::path& path, std::string& out) noexcept {
  const int fd = detail::retry_on_eintr(
      [&] { return ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY); });
  if (fd < 0) return detail::last_error();
  UniqueFd owner(fd);
  out.clear();
  struct stat st {};
  if (::fstat(fd, &st) == 0 && st.st_size > 0) out.reserve(static_cast<std::size_t>(st.st_size));
  std::array<char, 65536> buf{};
  for (;;) {
    const ssize_t n = detail::retry_on_eintr([&] { return ::read(fd, buf.data(), buf.size()); });
    if (n < 0) return detail::last_error();
    if (n == 0) return {};
    out.append(buf.data(), static_cast<std::size_t>(n));
  }
}

// The entry names of `dir` except "." and "..", unsorted.
std::error_code read_names(const std::filesystem::path& dir,
                           std::vector<std::string>& names) noexcept {
  names.clear();
  DIR* d = ::opendir(dir.c_str());  // glibc opens it O_CLOEXEC
  if (d == nullptr) return detail::last_error();
  std::error_code ec;
  for (;;) {
    errno = 0;
    const dirent* e = ::readdir(d);
    if (e == nullptr) {
      if (errno != 0) ec = detail::last_error();
      break;
    }
    const std::string_view n(e->d_name);
    if (n == "." || n == "..") continue;
    names.emplace_back(n);
  }
  ::closedir(d);
  return ec;
}

std::error_code list_names(const std::filesystem::path& dir,
                           std::vector<std::string>& names) noexcept {
  if (auto ec = read_names(dir, names)) return ec;
  std::sort(names.begin(), names.end());
  return {};
}

std::string with_consumer(const std::filesystem::path& p, std::string_view consumer) {
  std::string s = p.string();
  if (!consumer.empty()) s.append("' for consumer '").append(consumer);
  return s;
}

}  // namespace

// ---- Writer ----------------------------------------------------------------------------------

FileStore::Writer::Writer(Writer&& other) noexcept
    : root_(std::move(other.root_)),
      name_(std::move(other.name_)),
      sync_(other.sync_),
      fd_(std::move(other.fd_)) {}

FileStore::Writer& FileStore::Writer::operator=(Writer&& other) noexcept {
  if (this != &other) {
    discard();
    root_ = std::move(other.root_);
    name_ = std::move(other.name_);
    sync_ = other.sync_;
    fd_ = std::move(other.fd_);
  }
  return *this;
}

FileStore::Writer::~Writer() { discard(); }

std::filesystem::path FileStore::Writer::temp_path() const { return entry(root_, kTmp, name_); }

std::error_code FileStore::Writer::write(std::span<const std::byte> data) noexcept {
  if (!fd_.valid()) return make_error_code(errc::not_locked);
  return detail::write_all(
      fd_.get(), std::string_view(reinterpret_cast<const char*>(data.data()), data.size()));
}

void FileStore::Writer::write(std::string_view data) {
  const std::error_code ec = write(std::as_bytes(std::span(data.data(), data.size())));
  if (ec) throw LockError(ec, "cannot write message", temp_path().string());
}

void FileStore::Writer::discard() noexcept {
  if (!fd_.valid()) return;
  fd_.reset();
  const std::filesystem::path temp = entry(root_, kTmp, name_);
  ::unlink(temp.c_str());
}

std::error_code FileStore::Writer::commit(std::nothrow_t) noexcept {
  if (!fd_.valid()) return make_error_code(errc::not_locked);
  if (sync_) {
    if (auto ec = detail::sync_file(fd_.get())) return ec;
  }
  const std::filesystem::path temp = entry(root_, kTmp, name_);
  const std::filesystem::path dest = entry(root_, kNew, name_);
  if (auto ec = rename_no_replace(temp, dest)) return ec;  // still active: the caller may discard
  fd_.reset();
  if (sync_) return detail::sync_directory(root_ / kNew);
  return {};
}

void FileStore::Writer::commit() {
  const std::error_code ec = commit(std::nothrow);
  if (ec) throw LockError(ec, "cannot commit message", entry(root_, kNew, name_).string());
}

// ---- FileStore -------------------------------------------------------------------------------

FileStore::FileStore(std::filesystem::path root, unsigned permissions, bool sync)
    : root_(std::move(root)), permissions_(permissions & 07777), sync_(sync) {}

bool FileStore::valid_name(std::string_view name) noexcept {
  return !name.empty() && name != "." && name != ".." &&
         name.find_first_of(std::string_view("/\0", 2)) == std::string_view::npos;
}

std::filesystem::path FileStore::section_path(std::string_view section) const {
  if (!valid_name(section)) throw LockError(invalid_name(), "invalid section", section);
  return root_ / section;
}

std::error_code FileStore::prepare(std::nothrow_t) noexcept {
  try {
    const mode_t mode = directory_mode(permissions_);
    bool created = false;
    if (auto ec = make_directory(root_, mode, created)) return ec;
    bool any = false;
    for (std::string_view sub : {kTmp, kNew, kCur}) {
      if (auto ec = make_directory(root_ / sub, mode, created)) return ec;
      any = any || created;
    }
    if (any && sync_) return detail::sync_directory(root_);
    return {};
  } catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
  }
}

void FileStore::prepare() {
  const std::error_code ec = prepare(std::nothrow);
  if (ec) throw LockError(ec, "cannot prepare file store", root_.string());
}

FileStore::Writer FileStore::create(std::string_view name, std::error_code& ec) noexcept {
  Writer w;
  ec = check_name(name);
  if (ec) return w;
  try {
    w.root_ = root_;
    w.name_ = std::string(name);
    w.sync_ = sync_;
    const std::filesystem::path temp = entry(root_, kTmp, name);
    const int fd = detail::retry_on_eintr([&] {
      return ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY,
                    static_cast<mode_t>(permissions_));
    });
    if (fd < 0) {
      ec = detail::last_error();
      return w;
    }
    w.fd_.reset(fd);
  } catch (const std::bad_alloc&) {
    ec = std::make_error_code(std::errc::not_enough_memory);
  }
  return w;
}

FileStore::Writer FileStore::create(std::string_view name) {
  std::error_code ec;
  Writer w = create(name, ec);
  if (ec) {
    throw LockError(ec, "cannot create message",
                    valid_name(name) ? entry(root_, kTmp, name).string() : std::string(name));
  }
  return w;
}

std::error_code FileStore::move(std::string_view name, std::string_view from, std::string_view to,
                                std::nothrow_t) noexcept {
  if (auto ec = check_names({name, from, to})) return ec;
  try {
    const std::filesystem::path src = entry(root_, from, name);
    const std::filesystem::path dst = entry(root_, to, name);
    if (::rename(src.c_str(), dst.c_str()) != 0) return detail::last_error();
    if (sync_) return detail::sync_directory(root_ / to);
    return {};
  } catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
  }
}

void FileStore::move(std::string_view name, std::string_view from, std::string_view to) {
  const std::error_code ec = move(name, from, to, std::nothrow);
  if (ec) {
    const std::string target =
        check_names({name, from, to})
            ? std::string(name)
            : entry(root_, from, name).string() + "' to '" + entry(root_, to, name).string();
    throw LockError(ec, "cannot move message", target);
  }
}

std::error_code FileStore::copy(std::string_view name, std::string_view from, std::string_view to,
                                std::nothrow_t) noexcept {
  if (auto ec = check_names({name, from, to})) return ec;
  try {
    const std::filesystem::path src = entry(root_, from, name);
    const std::filesystem::path dst = entry(root_, to, name);
    std::string data;
    if (auto ec = read_all(src, data)) return ec;
    // The copy is written under a hidden tmp/ name and renamed into place: the destination is
    // never partial, and a crash leaves only tmp/ litter.
    UniqueFd fd;
    std::filesystem::path temp;
    std::error_code ec;
    for (int attempt = 0; attempt < kCopyNameAttempts && !fd.valid(); ++attempt) {
      std::string hex;
      if ((ec = detail::random_hex(8, hex))) return ec;
      temp = entry(root_, kTmp, std::string(".copy.") + hex);
      const int raw = detail::retry_on_eintr([&] {
        return ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY,
                      static_cast<mode_t>(permissions_));
      });
      if (raw >= 0) {
        fd.reset(raw);
        ec.clear();
      } else {
        ec = detail::last_error();
        if (ec != std::errc::file_exists) return ec;
      }
    }
    if (ec) return ec;
    ec = detail::write_all(fd.get(), data);
    if (!ec && sync_) ec = detail::sync_file(fd.get());
    fd.reset();
    if (!ec && ::rename(temp.c_str(), dst.c_str()) != 0) ec = detail::last_error();
    if (ec) {
      ::unlink(temp.c_str());
      return ec;
    }
    if (sync_) return detail::sync_directory(root_ / to);
    return {};
  } catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
  }
}

void FileStore::copy(std::string_view name, std::string_view from, std::string_view to) {
  const std::error_code ec = copy(name, from, to, std::nothrow);
  if (ec) {
    const std::string target =
        check_names({name, from, to})
            ? std::string(name)
            : entry(root_, from, name).string() + "' to '" + entry(root_, to, name).string();
    throw LockError(ec, "cannot copy message", target);
  }
}

std::error_code FileStore::remove(std::string_view name, std::string_view section,
                                  std::nothrow_t) noexcept {
  if (auto ec = check_names({name, section})) return ec;
  try {
    const std::filesystem::path p = entry(root_, section, name);
    if (::unlink(p.c_str()) != 0) return detail::last_error();  // missing is an error, as in gocept
    return {};
  } catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
  }
}

void FileStore::remove(std::string_view name, std::string_view section) {
  const std::error_code ec = remove(name, section, std::nothrow);
  if (ec) {
    throw LockError(
        ec, "cannot remove message",
        check_names({name, section}) ? std::string(name) : entry(root_, section, name).string());
  }
}

std::error_code FileStore::list(std::string_view section,
                                std::vector<std::filesystem::path>& out) const noexcept {
  out.clear();
  if (auto ec = check_name(section)) return ec;
  try {
    const std::filesystem::path dir = root_ / section;
    std::vector<std::string> names;
    if (auto ec = list_names(dir, names)) return ec;
    out.reserve(names.size());
    for (const auto& n : names) out.push_back(dir / n);
    return {};
  } catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
  }
}

std::vector<std::filesystem::path> FileStore::list(std::string_view section) const {
  std::vector<std::filesystem::path> out;
  const std::error_code ec = list(section, out);
  if (ec) {
    throw LockError(ec, "cannot list file store section",
                    valid_name(section) ? (root_ / section).string() : std::string(section));
  }
  return out;
}

std::error_code FileStore::read(std::string_view name, std::string_view section,
                                std::string& out) const noexcept {
  out.clear();
  if (auto ec = check_names({name, section})) return ec;
  try {
    return read_all(entry(root_, section, name), out);
  } catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
  }
}

std::string FileStore::read(std::string_view name, std::string_view section) const {
  std::string out;
  const std::error_code ec = read(name, section, out);
  if (ec) {
    throw LockError(
        ec, "cannot read message",
        check_names({name, section}) ? std::string(name) : entry(root_, section, name).string());
  }
  return out;
}

std::error_code FileStore::claim(std::string_view name, std::string_view /*consumer*/,
                                 bool& claimed) noexcept {
  claimed = false;
  if (auto ec = check_name(name)) return ec;
  try {
    const std::filesystem::path src = entry(root_, kNew, name);
    const std::filesystem::path dst = entry(root_, kCur, name);
    // The one rename decides: the loser finds new/NAME gone (ENOENT).
    if (::rename(src.c_str(), dst.c_str()) != 0) {
      const int err = errno;
      if (err == ENOENT) {
        // ENOENT also means new/ or cur/ is missing: that is an error, not a lost race.
        struct stat st {};
        const std::filesystem::path cur = root_ / kCur;
        if (::stat(cur.c_str(), &st) != 0) return detail::last_error();
        const std::filesystem::path fresh = root_ / kNew;
        if (::stat(fresh.c_str(), &st) != 0) return detail::last_error();
        return {};
      }
      return {err, std::generic_category()};
    }
    claimed = true;
    if (sync_) return detail::sync_directory(root_ / kCur);
    return {};
  } catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
  }
}

bool FileStore::claim(std::string_view name, std::string_view consumer) {
  bool claimed = false;
  const std::error_code ec = claim(name, consumer, claimed);
  if (ec) {
    throw LockError(
        ec, "cannot claim message",
        valid_name(name) ? with_consumer(entry(root_, kNew, name), consumer) : std::string(name));
  }
  return claimed;
}

std::error_code FileStore::claim_next(std::string_view consumer,
                                      std::optional<std::string>& out) noexcept {
  out.reset();
  try {
    std::vector<std::string> names;
    if (auto ec = read_names(root_ / kNew, names)) return ec;
    std::erase_if(names, [](const std::string& n) { return n.front() == '.'; });
    // A min-heap instead of a sort: usually the first candidate wins, so this is O(n), not
    // O(n log n), after the O(n) readdir.
    const auto later = std::greater<>();
    std::make_heap(names.begin(), names.end(), later);
    while (!names.empty()) {
      std::pop_heap(names.begin(), names.end(), later);
      std::string n = std::move(names.back());
      names.pop_back();
      bool claimed = false;
      if (auto ec = claim(n, consumer, claimed)) {
        if (claimed) out = std::move(n);  // claimed, but the fsync of cur/ failed
        return ec;
      }
      if (claimed) {
        out = std::move(n);
        return {};
      }
    }
    return {};
  } catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
  }
}

std::optional<std::string> FileStore::claim_next(std::string_view consumer) {
  std::optional<std::string> out;
  const std::error_code ec = claim_next(consumer, out);
  if (ec) throw LockError(ec, "cannot claim next message", with_consumer(root_ / kNew, consumer));
  return out;
}

std::error_code FileStore::unique_name(std::string& out) noexcept {
  out.clear();
  try {
    std::string hex;
    if (auto ec = detail::random_hex(8, hex)) return ec;
    const auto now = std::chrono::system_clock::now().time_since_epoch();
    const auto secs = std::chrono::duration_cast<std::chrono::seconds>(now);
    const auto usecs = std::chrono::duration_cast<std::chrono::microseconds>(now - secs);
    std::array<char, 96> buf{};
    const int n = std::snprintf(
        buf.data(), buf.size(), "%010lld.M%06lldP%ldR%s", static_cast<long long>(secs.count()),
        static_cast<long long>(usecs.count()), detail::current_pid(), hex.c_str());
    if (n < 0) return std::make_error_code(std::errc::invalid_argument);
    out.assign(buf.data(), std::min(static_cast<std::size_t>(n), buf.size() - 1));
    return {};
  } catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
  }
}

std::string FileStore::unique_name() {
  std::string out;
  const std::error_code ec = unique_name(out);
  if (ec) throw LockError(ec, "cannot make a unique message name", "");
  return out;
}

}  // namespace locksmith
