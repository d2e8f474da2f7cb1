// MkdirLock, PidLockFile and DotLock on POSIX: the lockfile 0.12 and liblockfile protocols.
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <random>
#include <string>
#include <string_view>
#include <type_traits>

#include "file_ops.hpp"
#include "holder_record.hpp"
#include "locksmith/lockfile_locks.hpp"
#include "stop_wait.hpp"
#include "sys_posix.hpp"

namespace locksmith {

namespace {

using detail::HolderRecord;
using detail::last_error;
using detail::parse_pid_line;
using detail::retry_on_eintr;

std::error_code os_error(int err) noexcept { return {err, std::generic_category()}; }

// Retries of one attempt that lost a race with another process (the entry vanished between two
// calls); after this many in a row the attempt reports the error instead of spinning.
constexpr int kMaxVanished = 100;

// "The name went away between two calls": ENOENT, or ESTALE from NFS when the file was removed
// between the lookup and the next operation on it.
bool vanished_errno(int err) noexcept { return err == ENOENT || err == ESTALE; }

// Backoff between attempts: 1 ms doubling to 128 ms, each sleep scaled by a factor in [0.5, 1.5).
// A stop requested through the lock's stop token (set_stop_token) ends the wait with
// errc::cancelled.
class Backoff {
 public:
  Backoff(Clock::time_point deadline, const std::stop_token& stop) noexcept
      : deadline_(deadline), entry_passed_(deadline <= Clock::now()), stop_(stop) {
    std::random_device rd;
    rng_.seed(rd());
  }
  // The result of a busy attempt: errc::busy / errc::timeout when the deadline has passed,
  // errc::cancelled when stopped, else sleeps and returns {} (try again).
  std::error_code busy() noexcept {
    const auto now = Clock::now();
    if (now >= deadline_) return make_error_code(entry_passed_ ? errc::busy : errc::timeout);
    if (stop_.stopped()) return make_error_code(errc::cancelled);
    std::uniform_real_distribution<double> jitter(0.5, 1.5);
    auto sleep = std::chrono::duration_cast<Clock::duration>(delay_ * jitter(rng_));
    if (deadline_ != kForever) sleep = std::min<Clock::duration>(sleep, deadline_ - now);
    stop_.wait_until(now + sleep);
    if (stop_.stopped()) return make_error_code(errc::cancelled);
    delay_ = std::min<Clock::duration>(delay_ * 2, std::chrono::milliseconds(128));
    return {};
  }
  // Before a retry that does not sleep (the lock vanished, or a stale one was broken): the
  // busy / timeout code once the deadline has passed, so that such retries cannot overrun it
  // where each file operation is slow (NFS). A non-waiting attempt still gets a few of them.
  std::error_code overdue() noexcept {
    if (stop_.stopped()) return make_error_code(errc::cancelled);
    if (Clock::now() < deadline_) return {};
    if (entry_passed_ && ++free_retries_ <= 3) return {};
    return make_error_code(entry_passed_ ? errc::busy : errc::timeout);
  }

 private:
  Clock::time_point deadline_;
  bool entry_passed_;
  int free_retries_ = 0;
  Clock::duration delay_ = std::chrono::milliseconds(1);
  std::minstd_rand rng_;
  detail::StopWait stop_;
};

// Outcome of one attempt.
enum class Try { acquired, busy, again, failed };

std::string hostname(bool short_name) {
  std::array<char, 256> buf{};
  if (::gethostname(buf.data(), buf.size() - 1) != 0) return "localhost";
  std::string name(buf.data());
  if (short_name) name = name.substr(0, name.find('.'));
  return name;
}

// liblockfile reads a pid with atoi(): leading blanks, an optional sign, then digits. Returns 0
// when there is no positive pid that fits pid_t.
long parse_pid_atoi(std::string_view s) noexcept {
  std::size_t i = 0;
  while (i < s.size() && (s[i] == ' ' || (s[i] >= '\t' && s[i] <= '\r'))) ++i;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
    if (s[i] == '-') return 0;
    ++i;
  }
  long value = 0;
  const auto [end, ec] = std::from_chars(s.data() + i, s.data() + s.size(), value);
  (void)end;
  if (ec != std::errc() || value <= 0 || value > INT_MAX) return 0;
  return value;
}

// Whether process `pid` exists (liblockfile: kill(pid, 0) succeeds or fails with EPERM).
bool pid_alive(long pid) noexcept {
  if (pid <= 0 || pid > INT_MAX) return true;  // never judge what we cannot test
  if (::kill(static_cast<pid_t>(pid), 0) == 0) return true;
  return errno != ESRCH;
}

// Reads at most `limit` bytes of the regular file at `path` (not following a symlink) and its
// stat. ENOENT when it vanished.
std::error_code read_head(const std::filesystem::path& path, std::size_t limit, std::string& out,
                          struct stat& st, UniqueFd* keep = nullptr) noexcept {
  const int fd = retry_on_eintr([&] {
    return ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
  });
  if (fd < 0) return last_error();
  UniqueFd owner(fd);
  if (::fstat(fd, &st) != 0) return last_error();
  if (!S_ISREG(st.st_mode)) return os_error(EINVAL);
  out.assign(limit, '\0');
  std::size_t got = 0;
  while (got < limit) {
    const ssize_t n = retry_on_eintr([&] { return ::read(fd, out.data() + got, limit - got); });
    if (n < 0) return last_error();
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  out.resize(got);
  if (keep) *keep = std::move(owner);
  return {};
}

// The error for an entry of the wrong type at a lock path: it is not a lock by the convention,
// and waiting would never end.
std::error_code junk_error(mode_t mode, bool want_directory) noexcept {
  if (S_ISLNK(mode)) return make_error_code(errc::symlink_refused);
  if (want_directory) return S_ISDIR(mode) ? os_error(EEXIST) : os_error(ENOTDIR);
  return S_ISDIR(mode) ? os_error(EISDIR) : os_error(EEXIST);
}

// Creates `path` exclusively with `content`. On failure nothing is left behind.
std::error_code create_exclusive(const std::filesystem::path& path, std::string_view content,
                                 unsigned permissions, struct stat& st, UniqueFd& out) noexcept {
  const int fd = retry_on_eintr([&] {
    // Readable too, so that release() can check the content through it (see read_own).
    return ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY,
                  static_cast<mode_t>(permissions & 07777));
  });
  if (fd < 0) return last_error();
  UniqueFd owner(fd);
  std::error_code ec = detail::write_all(fd, content);
  if (!ec && ::fstat(fd, &st) != 0) ec = last_error();
  if (ec) {
    owner.reset();
    ::unlink(path.c_str());
    return ec;
  }
  out = std::move(owner);
  return {};
}

// Whether `path` (not following a symlink) is the file open as `fd`. The fd keeps the inode
// alive, so a re-created file cannot carry the same inode number.
bool path_is_fd(const std::filesystem::path& path, const UniqueFd& fd) noexcept {
  struct stat a {
  }, b{};
  if (!fd.valid() || ::lstat(path.c_str(), &a) != 0 || ::fstat(fd.get(), &b) != 0) return false;
  return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

// path_is_fd, allowing for a waiter that is taking over a stale lock: it swaps its own lock in
// and, finding ours instead of the stale one, swaps ours back a few system calls later. While
// our inode is still linked somewhere (its link count is not 0) we look again, for up to a
// second: the swapper may be descheduled in between (a loaded machine took longer than the
// 20 ms this once allowed), and only one that died there keeps ours away for good.
bool path_is_fd_settled(const std::filesystem::path& path, const UniqueFd& fd) noexcept {
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  auto pause = std::chrono::microseconds(50);
  for (;;) {
    if (path_is_fd(path, fd)) return true;
    struct stat st {};
    if (!fd.valid() || ::fstat(fd.get(), &st) != 0 || st.st_nlink == 0) return false;
    if (std::chrono::steady_clock::now() >= give_up) return false;
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::microseconds(2000));
  }
}

// Whether `path` (not following a symlink) is the file open as `fd`, and the first `limit` bytes
// of that file. Needs no new descriptor: a release must work in a process that is out of them
// (EMFILE), or the lock would stay behind for good. Reading the inode through `fd` is reading
// the path's content, since both name the same inode. ENOENT when the path is another file or
// missing.
std::error_code read_own(const std::filesystem::path& path, const UniqueFd& fd, std::size_t limit,
                         std::string& out) noexcept {
  struct stat by_path {
  }, by_fd{};
  if (::lstat(path.c_str(), &by_path) != 0) return last_error();
  if (::fstat(fd.get(), &by_fd) != 0) return last_error();
  if (by_path.st_dev != by_fd.st_dev || by_path.st_ino != by_fd.st_ino) return os_error(ENOENT);
  out.assign(limit, '\0');
  std::size_t got = 0;
  while (got < limit) {
    const ssize_t n = retry_on_eintr(
        [&] { return ::pread(fd.get(), out.data() + got, limit - got, static_cast<off_t>(got)); });
    if (n < 0) return last_error();
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  out.resize(got);
  return {};
}

// Unlinks `path` if it is still the file described by `seen` (same inode, size and mtime):
// narrows the check-then-unlink window of stale breaking. ENOENT counts as done.
std::error_code unlink_if_unchanged(const std::filesystem::path& path,
                                    const struct stat& seen) noexcept {
  struct stat now {};
  if (::lstat(path.c_str(), &now) != 0) return errno == ENOENT ? std::error_code{} : last_error();
  if (now.st_dev != seen.st_dev || now.st_ino != seen.st_ino || now.st_size != seen.st_size ||
      now.st_mtime != seen.st_mtime) {
    return {};  // replaced meanwhile: not the stale lock we judged
  }
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return last_error();
  return {};
}

std::string pid_line(long pid) { return std::to_string(pid) + "\n"; }

// Python's threading ident is pthread_self(): an integer on Linux, a pointer on others.
template <class T>
std::uintptr_t thread_ident(T id) noexcept {
  if constexpr (std::is_pointer_v<T>) {
    return reinterpret_cast<std::uintptr_t>(id);
  } else {
    return static_cast<std::uintptr_t>(id);
  }
}

// --- Stale locks: judging them and taking them over ------------------------------------------

// How long ago `st` was last modified, by the system clock (file times are wall-clock times).
std::chrono::system_clock::duration age_of(const struct stat& st) noexcept {
  const auto mtime = std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(
          std::chrono::seconds(st.st_mtim.tv_sec) + std::chrono::nanoseconds(st.st_mtim.tv_nsec)));
  return std::chrono::system_clock::now() - mtime;
}

std::string parent_dir(const std::filesystem::path& path) {
  const std::filesystem::path parent = path.parent_path();
  return parent.empty() ? std::string(".") : parent.string();
}

detail::StaleContext stale_context(const std::filesystem::path& lock, const struct stat& st,
                                   std::chrono::milliseconds grace) {
  detail::StaleContext context;
  context.age = age_of(st);
  context.grace = grace;
  context.local_fs = detail::local_filesystem(parent_dir(lock).c_str());
  return context;
}

// Atomically swaps two existing names (Linux renameat2 RENAME_EXCHANGE). 0 or the errno.
int exchange_names(const std::filesystem::path& a, const std::filesystem::path& b) noexcept {
#if defined(LOCKSMITH_OS_LINUX) && defined(RENAME_EXCHANGE)
  if (::renameat2(AT_FDCWD, a.c_str(), AT_FDCWD, b.c_str(), RENAME_EXCHANGE) == 0) return 0;
  return errno;
#else
  (void)a;
  (void)b;
  return ENOSYS;
#endif
}

// The filesystem (NFS, old kernels, non-Linux) cannot exchange names atomically. (ENOTSUP is
// EOPNOTSUPP on Linux, where renameat2 exists.)
bool exchange_unsupported(int err) noexcept {
  return err == EINVAL || err == ENOSYS || err == EOPNOTSUPP;
}

// A name beside `lock` for the replacement that takes a stale lock over.
std::error_code takeover_name(const std::filesystem::path& lock, std::filesystem::path& out) {
  std::string rnd;
  if (const std::error_code ec = detail::random_hex(4, rnd)) return ec;
  out = lock;
  out += "." + rnd + ".takeover";
  return {};
}

bool same_inode(const struct stat& a, const struct stat& b) noexcept {
  return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

enum class TakeOver { acquired, again, held };

// Replaces the stale pid file `path`, judged while open with lstat `judged`, by a new one with
// `content`, in one atomic exchange: the name never goes missing, so no third process can slip
// in. If the exchanged-out file is not the one judged (another waiter broke it and someone
// locked afresh meanwhile), that fresh lock is put back at once and we report `held`.
std::error_code take_over_file(const std::filesystem::path& path, const struct stat& judged,
                               std::string_view content, unsigned permissions, UniqueFd& out,
                               TakeOver& result) noexcept {
  result = TakeOver::again;
  struct stat now {};
  // Still the lock judged? (Narrows the time in which we may swap out a fresh lock and back.)
  if (::lstat(path.c_str(), &now) != 0 || !same_inode(now, judged)) return {};
  std::filesystem::path tmp;
  try {
    if (const std::error_code ec = takeover_name(path, tmp)) return ec;
  } catch (...) {
    return std::make_error_code(std::errc::not_enough_memory);
  }
  struct stat tmp_st {};
  UniqueFd fd;
  if (const std::error_code ec = create_exclusive(tmp, content, permissions, tmp_st, fd)) {
    return ec;
  }
  if (const int err = exchange_names(tmp, path); err != 0) {
    ::unlink(tmp.c_str());
    result = TakeOver::again;
    if (vanished_errno(err)) return {};  // released or broken meanwhile: try to create it
    if (!exchange_unsupported(err)) return os_error(err);
    // No atomic exchange (NFS): remove it if unchanged. A breaker racing with us can then remove
    // a lock taken in between; that window is as narrow as two system calls.
    return unlink_if_unchanged(path, judged);
  }
  struct stat old {};
  if (::lstat(tmp.c_str(), &old) == 0 && same_inode(old, judged)) {
    ::unlink(tmp.c_str());
    out = std::move(fd);
    result = TakeOver::acquired;
    return {};
  }
  // Not the lock we judged: give it its name back (this replaces our file).
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    if (err != ENOENT) return os_error(err);
    out = std::move(fd);  // nothing to give back: the name is ours
    result = TakeOver::acquired;
    return {};
  }
  result = TakeOver::held;
  return {};
}

// The names in the directory open as `dfd` (without "." and ".."); at most `limit` + 1.
std::error_code list_names(int dfd, std::vector<std::string>& names, std::size_t limit) noexcept {
  const int copy = ::fcntl(dfd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) return last_error();
  DIR* dir = ::fdopendir(copy);
  if (!dir) {
    const std::error_code ec = last_error();
    ::close(copy);
    return ec;
  }
  ::rewinddir(dir);
  names.clear();
  std::error_code ec;
  try {
    errno = 0;
    while (const dirent* entry = ::readdir(dir)) {
      const std::string_view name(entry->d_name);
      if (name != "." && name != "..") names.emplace_back(name);
      if (names.size() > limit) break;
      errno = 0;
    }
    if (errno != 0) ec = last_error();
  } catch (...) {
    ec = std::make_error_code(std::errc::not_enough_memory);
  }
  ::closedir(dir);
  return ec;
}

// Whether the MkdirLockFile directory open as `dfd` (fstat `dst`) was left by a holder that is
// gone. Each file in it names a holder: by our record inside it, else by lockfile's name; every
// one must be gone. A directory with anything else in it (or more than a few files) is never
// judged stale.
bool mkdir_lock_is_stale(const std::filesystem::path& lock, int dfd, const struct stat& dst,
                         std::chrono::milliseconds grace) {
  std::vector<std::string> names;
  if (list_names(dfd, names, 8) || names.size() > 8) return false;
  detail::StaleContext context = stale_context(lock, dst, grace);
  std::vector<HolderRecord> holders;
  for (const std::string& name : names) {
    struct stat st {};
    if (::fstatat(dfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) {
      return false;
    }
    context.age = std::min(context.age, age_of(st));
    HolderRecord record;
    const int fd = retry_on_eintr([&] {
      return ::openat(dfd, name.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    });
    if (fd >= 0) {
      UniqueFd owner(fd);
      std::string text(4096, '\0');
      const ssize_t n = retry_on_eintr([&] { return ::read(fd, text.data(), text.size()); });
      if (n > 0) {
        text.resize(static_cast<std::size_t>(n));
        record = detail::parse_holder(text);
      }
    }
    // Our record says more than the name; lockfile's empty file says only what its name says.
    if (!record.host) record = detail::parse_lockfile_unique_name_here(name);
    holders.push_back(std::move(record));
  }
  if (holders.empty()) return detail::holder_is_gone(HolderRecord{}, true, context);
  return std::all_of(holders.begin(), holders.end(), [&](const HolderRecord& h) {
    return detail::holder_is_gone(h, false, context);
  });
}

// Removes every file in the directory open as `dfd`, then the directory at `path`.
std::error_code remove_lock_dir(int dfd, const std::filesystem::path& path) noexcept {
  std::vector<std::string> names;
  if (const std::error_code ec = list_names(dfd, names, 64)) return ec;
  for (const std::string& name : names) {
    if (::unlinkat(dfd, name.c_str(), 0) != 0 && errno != ENOENT) return last_error();
  }
  if (::rmdir(path.c_str()) != 0 && errno != ENOENT) return last_error();
  return {};
}

// Makes the lock directory content at `dir`: the directory, then `unique` in it holding
// `content`. On failure nothing is left behind.
std::error_code make_lock_dir(const std::filesystem::path& dir, const std::string& unique,
                              std::string_view content, unsigned permissions, bool dir_exists,
                              UniqueFd& dir_fd, UniqueFd& file_fd) noexcept {
  if (!dir_exists && ::mkdir(dir.c_str(), static_cast<mode_t>(permissions & 07777)) != 0) {
    return last_error();
  }
  const int dfd = retry_on_eintr(
      [&] { return ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW); });
  if (dfd < 0) {
    const std::error_code ec = last_error();
    ::rmdir(dir.c_str());
    return ec;
  }
  UniqueFd d(dfd);
  // As lockfile: open(unique, "wb") inside the directory; our record goes in it.
  const int fd = retry_on_eintr([&] {
    return ::openat(dfd, unique.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0666);
  });
  std::error_code ec = fd < 0 ? last_error() : detail::write_all(fd, content);
  if (ec) {
    if (fd >= 0) ::close(fd);
    ::unlinkat(dfd, unique.c_str(), 0);
    ::rmdir(dir.c_str());
    return ec;
  }
  dir_fd = std::move(d);
  file_fd = UniqueFd(fd);
  return {};
}

// MkdirLock's take_over_file: a new directory with our file is exchanged with the stale one.
std::error_code take_over_dir(const std::filesystem::path& lock, int judged_fd,
                              const struct stat& judged, const std::string& unique,
                              std::string_view content, unsigned permissions, UniqueFd& dir_fd,
                              UniqueFd& file_fd, TakeOver& result) noexcept {
  result = TakeOver::again;
  struct stat now {};
  if (::lstat(lock.c_str(), &now) != 0 || !same_inode(now, judged)) return {};  // see above
  std::filesystem::path tmp;
  try {
    if (const std::error_code ec = takeover_name(lock, tmp)) return ec;
  } catch (...) {
    return std::make_error_code(std::errc::not_enough_memory);
  }
  UniqueFd new_dir, new_file;
  if (const std::error_code ec =
          make_lock_dir(tmp, unique, content, permissions, false, new_dir, new_file)) {
    return ec;
  }
  const auto discard_new = [&] {
    ::unlinkat(new_dir.get(), unique.c_str(), 0);
    ::rmdir(tmp.c_str());
  };
  if (const int err = exchange_names(tmp, lock); err != 0) {
    discard_new();
    result = TakeOver::again;
    if (vanished_errno(err)) return {};
    if (!exchange_unsupported(err)) return os_error(err);
    // No atomic exchange (NFS): remove it if it is still the directory judged; the window is
    // as narrow as a few system calls.
    if (::lstat(lock.c_str(), &now) != 0 || !same_inode(now, judged)) return {};
    const std::error_code ec = remove_lock_dir(judged_fd, lock);
    return ec == std::errc::directory_not_empty ? std::error_code{} : ec;
  }
  struct stat old {};
  if (::lstat(tmp.c_str(), &old) == 0 && same_inode(old, judged)) {
    (void)remove_lock_dir(judged_fd, tmp);  // the stale holder's leftovers, now under tmp
    dir_fd = std::move(new_dir);
    file_fd = std::move(new_file);
    result = TakeOver::acquired;
    return {};
  }
  // Not the directory we judged: swap the fresh lock back, untouched, and drop ours.
  if (const int err = exchange_names(tmp, lock); err != 0) return os_error(err);
  discard_new();
  result = TakeOver::held;
  return {};
}

}  // namespace

// --- MkdirLock ---------------------------------------------------------------------------------

std::filesystem::path MkdirLock::unique_path() const {
  if (held_) return lock_path_ / unique_name_;
  std::string tname;
  if (options_.threaded) {
    std::array<char, 16> buf{};
    std::snprintf(buf.data(), buf.size(), "-%lx",
                  static_cast<unsigned long>(thread_ident(::pthread_self()) & 0xffffffffu));
    tname = buf.data();
  }
  return lock_path_ / (hostname(false) + "." + tname + std::to_string(detail::current_pid()));
}

std::error_code MkdirLock::acquire(LockMode mode, Clock::time_point deadline) noexcept {
  if (held_) return std::make_error_code(std::errc::resource_deadlock_would_occur);
  if (mode != LockMode::exclusive) return make_error_code(errc::unsupported);
  std::string unique, content;
  try {
    unique = unique_path().filename().string();
    content = detail::format_holder(detail::current_holder());
  } catch (...) {
    return std::make_error_code(std::errc::not_enough_memory);
  }
  const auto take = [&](UniqueFd dir, UniqueFd file) {
    dir_fd_ = std::move(dir);
    file_fd_ = std::move(file);
    held_ = true;
    owner_pid_ = detail::current_pid();
    unique_name_ = unique;
  };
  if (stop_.stop_requested()) return make_error_code(errc::cancelled);
  Backoff backoff(deadline, stop_);
  int vanished = 0;
  for (;;) {
    if (::mkdir(lock_path_.c_str(), static_cast<mode_t>(options_.permissions & 07777)) == 0) {
      UniqueFd dir, file;
      if (const std::error_code ec =
              make_lock_dir(lock_path_, unique, content, options_.permissions, true, dir, file)) {
        return ec;
      }
      take(std::move(dir), std::move(file));
      return {};
    }
    const int err = errno;
    if (err == EINTR) continue;
    if (err != EEXIST) return os_error(err);
    struct stat st {};
    if (::lstat(lock_path_.c_str(), &st) != 0) {
      // Released meanwhile (NFS: ESTALE when it went between lookup and getattr).
      if (vanished_errno(errno) && ++vanished < kMaxVanished) {
        if (const std::error_code ec = backoff.overdue()) return ec;
        continue;
      }
      return last_error();
    }
    if (!S_ISDIR(st.st_mode)) return junk_error(st.st_mode, true);
    vanished = 0;
    // Judged through a descriptor, which also keeps its inode number from being reused.
    const int dfd = options_.stale == StalePolicy::automatic ? retry_on_eintr([&] {
      return ::open(lock_path_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    })
                                                             : -1;
    UniqueFd judged(dfd);
    if (dfd >= 0 && ::fstat(dfd, &st) == 0 &&
        mkdir_lock_is_stale(lock_path_, dfd, st, options_.stale_grace)) {
      UniqueFd dir, file;
      TakeOver result = TakeOver::held;
      if (const std::error_code ec = take_over_dir(lock_path_, dfd, st, unique, content,
                                                   options_.permissions, dir, file, result)) {
        return ec;
      }
      if (result == TakeOver::acquired) {
        take(std::move(dir), std::move(file));
        return {};
      }
      if (result == TakeOver::again) {
        if (const std::error_code ec = backoff.overdue()) return ec;
        continue;
      }
    }
    if (const std::error_code ec = backoff.busy()) return ec;
  }
}

std::error_code MkdirLock::release() noexcept {
  if (!held_) return make_error_code(errc::not_locked);
  held_ = false;
  if (owner_pid_ != detail::current_pid()) return make_error_code(errc::not_locked);  // forked
  UniqueFd dir = std::move(dir_fd_), file = std::move(file_fd_);
  // Our file is removed through our directory's descriptor, wherever that directory is linked
  // now; the directory itself only by its path, once that path is it again. A breaker taking
  // over a stale lock may have swapped ours out for a few system calls (path_is_fd_settled),
  // even between our unlink and our rmdir: its directory (with its file) is then at the path,
  // rmdir says ENOTEMPTY, and ours comes back as it swaps back. Three tries cover that; a
  // directory that stays elsewhere, or that holds another file, is a lost lock.
  struct stat by_name {
  }, by_fd{};
  if (!path_is_fd_settled(lock_path_, dir) ||
      ::fstatat(dir.get(), unique_name_.c_str(), &by_name, AT_SYMLINK_NOFOLLOW) != 0 ||
      ::fstat(file.get(), &by_fd) != 0 || by_name.st_dev != by_fd.st_dev ||
      by_name.st_ino != by_fd.st_ino) {
    return make_error_code(errc::lock_lost);
  }
  file.reset();
  if (::unlinkat(dir.get(), unique_name_.c_str(), 0) != 0) {
    if (errno == ENOENT) return make_error_code(errc::lock_lost);
    return last_error();
  }
  for (int attempt = 0; attempt < 3; ++attempt) {
    if (attempt > 0 && !path_is_fd_settled(lock_path_, dir)) break;
    if (::rmdir(lock_path_.c_str()) == 0) return {};
    if (errno != ENOTEMPTY && errno != EEXIST && errno != ENOENT) return last_error();
  }
  return make_error_code(errc::lock_lost);
}

bool MkdirLock::is_locked() const noexcept {
  struct stat st {};
  return ::lstat(lock_path_.c_str(), &st) == 0;
}

std::error_code MkdirLock::break_lock() noexcept {
  std::error_code ec;
  for (std::filesystem::directory_iterator it(lock_path_, ec), end; !ec && it != end;
       it.increment(ec)) {
    if (::unlink(it->path().c_str()) != 0 && errno != ENOENT) return last_error();
  }
  if (ec && ec != std::errc::no_such_file_or_directory) return ec;
  if (::rmdir(lock_path_.c_str()) != 0 && errno != ENOENT) return last_error();
  return {};
}

// --- PidLockFile -------------------------------------------------------------------------------

std::error_code PidLockFile::acquire(LockMode mode, Clock::time_point deadline) noexcept {
  if (held_) return std::make_error_code(std::errc::resource_deadlock_would_occur);
  if (mode != LockMode::exclusive) return make_error_code(errc::unsupported);
  const long pid = detail::current_pid();
  std::string content;
  try {
    content = detail::format_holder(detail::current_holder());
  } catch (...) {
    return std::make_error_code(std::errc::not_enough_memory);
  }
  if (stop_.stop_requested()) return make_error_code(errc::cancelled);
  Backoff backoff(deadline, stop_);
  int vanished = 0;
  for (;;) {
    struct stat st {};
    UniqueFd fd;
    std::error_code ec = create_exclusive(path_, content, options_.permissions, st, fd);
    if (!ec) {
      held_ = true;
      owner_pid_ = pid;
      fd_ = std::move(fd);
      return {};
    }
    if (ec != std::errc::file_exists) return ec;
    std::string text;
    UniqueFd judged;  // open while judged, so that its inode number cannot be reused meanwhile
    ec = read_head(path_, 4096, text, st, &judged);
    if (ec && vanished_errno(ec.value()) && ec.category() == std::generic_category() &&
        ++vanished < kMaxVanished) {
      if (const std::error_code late = backoff.overdue()) return late;
      continue;
    }
    if (ec == std::errc::invalid_argument || ec == std::errc::too_many_symbolic_link_levels) {
      struct stat lst {};
      if (::lstat(path_.c_str(), &lst) == 0) return junk_error(lst.st_mode, false);
    }
    if (ec) return ec;
    vanished = 0;
    if (options_.stale == StalePolicy::automatic) {
      bool stale = false;
      try {
        stale = detail::holder_is_gone(detail::parse_holder(text), st.st_size == 0,
                                       stale_context(path_, st, options_.stale_grace));
      } catch (...) {
        return std::make_error_code(std::errc::not_enough_memory);
      }
      if (stale) {
        TakeOver result = TakeOver::held;
        ec = take_over_file(path_, st, content, options_.permissions, fd, result);
        if (ec) return ec;
        if (result == TakeOver::acquired) {
          held_ = true;
          owner_pid_ = pid;
          fd_ = std::move(fd);
          return {};
        }
        if (result == TakeOver::again) {
          if (const std::error_code late = backoff.overdue()) return late;
          continue;
        }
      }
    }
    if (const std::error_code wait = backoff.busy()) return wait;
  }
}

std::error_code PidLockFile::release() noexcept {
  if (!held_) return make_error_code(errc::not_locked);
  held_ = false;
  if (owner_pid_ != detail::current_pid()) return make_error_code(errc::not_locked);  // forked
  (void)path_is_fd_settled(path_, fd_);  // a waiter may have our file swapped out just now
  std::string text;
  const std::error_code ec = read_own(path_, fd_, 4096, text);
  if (ec == std::errc::no_such_file_or_directory || ec == std::errc::not_a_directory) {
    fd_.reset();
    return make_error_code(errc::lock_lost);
  }
  if (ec) {
    fd_.reset();
    return ec;
  }
  const bool ours = parse_pid_line(text) == owner_pid_;
  fd_.reset();
  if (!ours) return make_error_code(errc::lock_lost);
  if (::unlink(path_.c_str()) != 0) {
    return errno == ENOENT ? make_error_code(errc::lock_lost) : last_error();
  }
  return {};
}

bool PidLockFile::is_locked() const noexcept {
  struct stat st {};
  return ::lstat(path_.c_str(), &st) == 0;
}

std::optional<long> PidLockFile::read_pid() const {
  std::string text;
  struct stat st {};
  if (read_head(path_, 4096, text, st)) return std::nullopt;
  return parse_pid_line(text);
}

std::error_code PidLockFile::break_lock() noexcept {
  if (::unlink(path_.c_str()) != 0 && errno != ENOENT) return last_error();
  return {};
}

// --- DotLock -----------------------------------------------------------------------------------

namespace {

enum class Validity { valid, stale, vanished };

// liblockfile's lockfile_check() on the lock whose lstat is `st`.
Validity check_dotlock(const std::filesystem::path& path, const struct stat& st,
                       const DotLockOptions& options) noexcept {
  std::string text;
  struct stat read_st {};
  const std::error_code ec = read_head(path, 16, text, read_st);
  if (ec && ec.category() == std::generic_category() && vanished_errno(ec.value())) {
    return Validity::vanished;
  }
  if (!ec && (read_st.st_dev != st.st_dev || read_st.st_ino != st.st_ino)) {
    return Validity::vanished;  // replaced between lstat and open: look again
  }
  if (!ec && options.check_pid) {
    const long pid = parse_pid_atoi(text);
    if (pid > 0) return pid_alive(pid) ? Validity::valid : Validity::stale;
  }
  // No usable pid (or unreadable): the age rule on the mtime.
  if (!options.stale_age) return Validity::valid;
  const std::time_t now = std::time(nullptr);
  return now < st.st_mtime + options.stale_age->count() ? Validity::valid : Validity::stale;
}

}  // namespace

std::error_code DotLock::acquire(LockMode mode, Clock::time_point deadline) noexcept {
  if (held_) return std::make_error_code(std::errc::resource_deadlock_would_occur);
  if (mode != LockMode::exclusive) return make_error_code(errc::unsupported);
  const long pid = detail::current_pid();
  std::string content;
  std::filesystem::path tmp;
  struct stat tmp_st {};
  UniqueFd tmp_fd;
  std::error_code ec;
  try {
    content = pid_line(pid);
    // liblockfile: ".lk%05d%x%s" % (pid, time & 15, short hostname). A random part replaces the
    // time digit so that threads of one process never collide.
    const std::string host = hostname(true);
    for (int attempt = 0;; ++attempt) {
      std::string rnd;
      ec = detail::random_hex(4, rnd);
      if (ec) return ec;
      std::array<char, 32> num{};
      std::snprintf(num.data(), num.size(), "%05ld", pid);
      std::string name = ".lk";
      name.append(num.data()).append(rnd).append(host);
      tmp = lock_path_.parent_path() / name;
      ec = create_exclusive(tmp, content, options_.permissions, tmp_st, tmp_fd);
      if (ec != std::errc::file_exists || attempt > 10) break;
    }
  } catch (...) {
    return std::make_error_code(std::errc::not_enough_memory);
  }
  if (ec) return ec;
  struct TmpGuard {
    const std::filesystem::path& p;
    ~TmpGuard() { ::unlink(p.c_str()); }
  } guard{tmp};

  if (stop_.stop_requested()) return make_error_code(errc::cancelled);
  Backoff backoff(deadline, stop_);
  int vanished = 0;
  for (;;) {
    // NFS: link()'s return value may lie (a retransmitted request); the inodes decide.
    const int link_rc = ::link(tmp.c_str(), lock_path_.c_str());
    const int link_err = link_rc == 0 ? 0 : errno;
    struct stat st {};
    if (::lstat(lock_path_.c_str(), &st) != 0) {
      const int stat_err = errno;
      if (vanished_errno(stat_err) && link_err == EEXIST && ++vanished < kMaxVanished) {
        if (const std::error_code late = backoff.overdue()) return late;
        continue;
      }
      // The lstat's error says why we cannot tell who holds it (EEXIST would hide it).
      return link_err != 0 && link_err != EEXIST ? os_error(link_err) : os_error(stat_err);
    }
    if (st.st_dev == tmp_st.st_dev && st.st_ino == tmp_st.st_ino) {
      held_ = true;
      owner_pid_ = pid;
      fd_ = std::move(tmp_fd);
      return {};  // the guard unlinks the temporary name; the lock keeps the inode
    }
    if (link_err != 0 && link_err != EEXIST && link_err != EINTR) return os_error(link_err);
    if (!S_ISREG(st.st_mode)) return junk_error(st.st_mode, false);
    switch (check_dotlock(lock_path_, st, options_)) {
      case Validity::vanished:
        if (++vanished < kMaxVanished) {
          if (const std::error_code late = backoff.overdue()) return late;
          continue;
        }
        break;
      case Validity::stale:
        ec = unlink_if_unchanged(lock_path_, st);
        if (ec) return ec;
        if (const std::error_code late = backoff.overdue()) return late;
        continue;
      case Validity::valid:
        break;
    }
    vanished = 0;
    if (const std::error_code wait = backoff.busy()) return wait;
  }
}

std::error_code DotLock::release() noexcept {
  if (!held_) return make_error_code(errc::not_locked);
  held_ = false;
  if (owner_pid_ != detail::current_pid()) return make_error_code(errc::not_locked);  // forked
  std::string text;
  const std::error_code ec = read_own(lock_path_, fd_, 16, text);
  if (ec == std::errc::no_such_file_or_directory || ec == std::errc::not_a_directory) {
    fd_.reset();
    return make_error_code(errc::lock_lost);
  }
  if (ec) {
    fd_.reset();
    return ec;
  }
  const bool ours = parse_pid_atoi(text) == owner_pid_;
  fd_.reset();
  if (!ours) return make_error_code(errc::lock_lost);
  if (::unlink(lock_path_.c_str()) != 0) {
    return errno == ENOENT ? make_error_code(errc::lock_lost) : last_error();
  }
  return {};
}

bool DotLock::is_locked() const noexcept {
  struct stat st {};
  return ::lstat(lock_path_.c_str(), &st) == 0;
}

bool DotLock::is_valid() const noexcept {
  struct stat st {};
  if (::lstat(lock_path_.c_str(), &st) != 0) return false;
  if (!S_ISREG(st.st_mode)) return true;  // junk never goes stale
  return check_dotlock(lock_path_, st, options_) == Validity::valid;
}

std::error_code DotLock::touch() noexcept {
  if (!held_ || owner_pid_ != detail::current_pid()) return make_error_code(errc::not_locked);
  if (!path_is_fd(lock_path_, fd_)) return make_error_code(errc::lock_lost);
  if (::utimensat(AT_FDCWD, lock_path_.c_str(), nullptr, AT_SYMLINK_NOFOLLOW) != 0) {
    return last_error();
  }
  return {};
}

}  // namespace locksmith
