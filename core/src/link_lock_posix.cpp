// LinkLock on POSIX: flufl.lock's hard-link protocol (see link_lock.hpp), with a kept claim file
// and inotify wake-ups on local filesystems.
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>

#include "file_ops.hpp"
#include "link_lock_internal.hpp"
#include "locksmith/link_lock.hpp"
#include "stop_wait.hpp"
#include "sys_posix.hpp"

#if defined(LOCKSMITH_OS_LINUX)
#include <sys/inotify.h>
#include <sys/vfs.h>
#endif

namespace locksmith {
namespace {

using SysClock = std::chrono::system_clock;
using namespace std::chrono_literals;

// How long a notified waiter sleeps at most without an event (a guard against a missed event).
constexpr auto kNotifyBackstop = 1s;
// Retries of link() after the lock file vanished between link() and stat() (a release raced us).
constexpr int kRaceRetries = 64;

constexpr const char* kSpace = " \t\n\r\v\f";

// A breaker holds the break lock for a few system calls (microseconds). One held longer than
// this (plus clock_slop, for the clocks of other clients and of a file server) was left by a
// breaker that crashed there, and is removed. A bound far above any scheduling delay: a breaker
// paused longer than this (SIGSTOP, a frozen VM) is what the inode checks of remove_if_inode()
// are for.
constexpr auto kBreakLockStale = 1s;
// How soon a waiter retries when another breaker holds the break lock.
constexpr auto kBreakLockRetry = 2ms;

bool is_missing(int err) noexcept { return err == ENOENT || err == ESTALE; }

// Why an entry that is not a regular file can never be a lock file here: waiting for it to be
// released would never end.
std::error_code not_a_lock_file(mode_t mode) noexcept {
  if (S_ISLNK(mode)) return make_error_code(errc::symlink_refused);
  if (S_ISDIR(mode)) return {EISDIR, std::generic_category()};
  return make_error_code(errc::not_regular_file);
}

SysClock::time_point mtime_of(const struct stat& st) noexcept {
  return SysClock::time_point(std::chrono::duration_cast<SysClock::duration>(
      std::chrono::seconds(st.st_mtim.tv_sec) + std::chrono::nanoseconds(st.st_mtim.tv_nsec)));
}

SysClock::time_point ctime_of(const struct stat& st) noexcept {
  return SysClock::time_point(std::chrono::duration_cast<SysClock::duration>(
      std::chrono::seconds(st.st_ctim.tv_sec) + std::chrono::nanoseconds(st.st_ctim.tv_nsec)));
}

bool same_inode(const struct stat& st, std::uint64_t dev, std::uint64_t ino) noexcept {
  return static_cast<std::uint64_t>(st.st_dev) == dev &&
         static_cast<std::uint64_t>(st.st_ino) == ino;
}

enum class Removal { removed, absent, other };

// Removes the name `path` only while it names the inode (dev, ino): unlink(path) after a stat()
// could remove a file that replaced the one judged in between. Instead the entry is renamed to
// `aside` (a unique name in the same directory), atomically; what moved is then checked, and
// when it is another file it is linked back (link: nothing created at `path` meanwhile is
// replaced). `other` means `path` named something else; only then is `path` absent for the few
// microseconds until it is put back.
std::error_code remove_if_inode(const std::string& path, const std::string& aside,
                                std::uint64_t dev, std::uint64_t ino, Removal& out) noexcept {
  out = Removal::absent;
  struct stat st {};
  if (::rename(path.c_str(), aside.c_str()) != 0) {
    const int err = errno;
    // ENOENT with `aside` present: an NFS retransmission of a rename that did happen.
    if (!is_missing(err) || ::lstat(aside.c_str(), &st) != 0) {
      return is_missing(err) ? std::error_code{} : std::error_code{err, std::generic_category()};
    }
  }
  if (::lstat(aside.c_str(), &st) != 0) return {};  // removed by someone else meanwhile
  if (same_inode(st, dev, ino)) {
    ::unlink(aside.c_str());
    out = Removal::removed;
    return {};
  }
  out = Removal::other;
  struct stat back {};
  if (::link(aside.c_str(), path.c_str()) == 0 ||
      (errno == EEXIST && ::lstat(path.c_str(), &back) == 0 && back.st_ino == st.st_ino &&
       back.st_dev == st.st_dev)) {
    ::unlink(aside.c_str());
  }
  // Otherwise someone created `path` in those microseconds; the moved file stays at `aside`
  // (replacing what is at `path` now would be worse).
  return {};
}

// An expiry to write: flufl's _touch sets atime = mtime = now + lifetime (float seconds, so to
// the nanosecond here), and the same instant on the steady clock for valid_until().
struct Expiry {
  std::array<struct timespec, 2> times{};
  std::int64_t ns = 0;  // since the epoch
  Clock::time_point steady{};
};

Expiry expiry_after(std::chrono::milliseconds lifetime) noexcept {
  Expiry e;
  e.steady = Clock::now() + lifetime;
  const auto t = std::chrono::time_point_cast<std::chrono::nanoseconds>(SysClock::now() + lifetime);
  e.ns = t.time_since_epoch().count();
  struct timespec ts {};
  ts.tv_sec = static_cast<time_t>(e.ns / 1000000000);
  ts.tv_nsec = static_cast<long>(e.ns % 1000000000);
  e.times = {ts, ts};
  return e;
}

std::int64_t ns_of(const struct timespec& ts) noexcept {
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// A claim's expiry this close to the one wanted is kept instead of rewritten: a journalled
// futimens per acquisition would dominate an uncontended cycle. valid_until() stays the expiry
// really written, so the holder's own bound is exact either way.
std::chrono::nanoseconds rewrite_tolerance(std::chrono::milliseconds lifetime) noexcept {
  return std::min<std::chrono::nanoseconds>(lifetime / 100, std::chrono::milliseconds(10));
}

std::error_code read_fd(int fd, std::string& out) noexcept {
  out.clear();
  std::array<char, 1024> buf{};
  for (;;) {
    const ssize_t n = detail::retry_on_eintr([&] { return ::read(fd, buf.data(), buf.size()); });
    if (n < 0) return detail::last_error();
    if (n == 0) return {};
    out.append(buf.data(), static_cast<std::size_t>(n));
    if (out.size() > 65536) return std::make_error_code(std::errc::file_too_large);
  }
}

// psutil.pid_exists (what flufl's state uses): kill(pid, 0), and on Linux the pid must be a
// process (thread group leader), not just a thread id.
bool pid_exists(long pid) noexcept {
  if (pid < 0) return false;
  if (pid == 0) return true;
  if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno != EPERM) return false;
#if defined(LOCKSMITH_OS_LINUX)
  std::string status;
  if (detail::read_small_file("/proc/" + std::to_string(pid) + "/status", status)) return true;
  const auto pos = status.find("\nTgid:");
  if (pos == std::string::npos) return true;
  return std::strtol(status.c_str() + pos + 6, nullptr, 10) == pid;
#else
  return true;
#endif
}

std::string compute_fqdn() {
  // Python's socket.getfqdn(): gethostname(), then gethostbyaddr() of it; the first of the
  // canonical name and its aliases that contains a dot, else the canonical name.
  std::array<char, 256> buf{};
  if (::gethostname(buf.data(), buf.size() - 1) != 0) return "localhost";
  std::string name(buf.data());  // not const: returned by move below
  struct addrinfo hints {};
  hints.ai_family = AF_UNSPEC;
  struct addrinfo* res = nullptr;
  if (::getaddrinfo(name.c_str(), nullptr, &hints, &res) != 0 || res == nullptr) return name;
  const void* addr = nullptr;
  socklen_t len = 0;
  const int family = res->ai_family;
  if (family == AF_INET) {
    addr = &reinterpret_cast<const struct sockaddr_in*>(res->ai_addr)->sin_addr;
    len = sizeof(struct in_addr);
  } else if (family == AF_INET6) {
    addr = &reinterpret_cast<const struct sockaddr_in6*>(res->ai_addr)->sin6_addr;
    len = sizeof(struct in6_addr);
  }
  std::string result = name;
  if (addr != nullptr) {
#if defined(__GLIBC__)
    struct hostent he {};
    struct hostent* hp = nullptr;
    std::array<char, 8192> work{};
    int herr = 0;
    if (::gethostbyaddr_r(addr, len, family, &he, work.data(), work.size(), &hp, &herr) != 0) {
      hp = nullptr;
    }
#else
    struct hostent* hp = ::gethostbyaddr(addr, len, family);
#endif
    if (hp != nullptr && hp->h_name != nullptr) {
      result = hp->h_name;
      for (char** alias = hp->h_aliases; alias != nullptr && *alias != nullptr; ++alias) {
        if (result.find('.') != std::string::npos) break;
        if (std::strchr(*alias, '.') != nullptr) result = *alias;
      }
    }
  }
  ::freeaddrinfo(res);
  return result;
}

// A splitmix64 generator seeded from the OS, for backoff jitter (one per thread).
std::uint64_t jitter_random() noexcept {
  thread_local std::uint64_t state = [] {
    std::string hex;
    std::uint64_t seed = static_cast<std::uint64_t>(Clock::now().time_since_epoch().count());
    if (!detail::random_hex(8, hex)) seed = std::stoull(hex, nullptr, 16);
    return seed;
  }();
  std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

#if defined(LOCKSMITH_OS_LINUX)
// Filesystems whose changes are all made by this kernel, so inotify sees every client.
bool is_local_filesystem(const std::string& dir) noexcept {
  struct statfs sfs {};
  if (::statfs(dir.c_str(), &sfs) != 0) return false;
  switch (static_cast<std::uint64_t>(sfs.f_type)) {
    case 0xEF53:      // ext2/3/4
    case 0x58465342:  // xfs
    case 0x9123683E:  // btrfs
    case 0x01021994:  // tmpfs
    case 0x858458F6:  // ramfs
    case 0xF2F52010:  // f2fs
    case 0x2FC12FC1:  // zfs
    case 0x3153464A:  // jfs
    case 0x52654973:  // reiserfs
    case 0xCA451A4E:  // bcachefs
    case 0x794C7630:  // overlayfs
      return true;
    default:
      return false;
  }
}
#endif

// Sleeps until the lock file may have changed, or `until`.
class ChangeWaiter {
 public:
  // Uses (and on first use creates) the caller's inotify instance `fd`.
  ChangeWaiter(const std::filesystem::path& lockfile, const LinkLockOptions& options, UniqueFd& fd,
               bool& tried)
      : name_(lockfile.filename().string()),
        fd_(fd),
        backoff_(options.backoff_min),
        options_(options) {
#if defined(LOCKSMITH_OS_LINUX)
    if (options.wait == LinkWait::backoff) return;
    if (fd.valid()) {
      use_notify_ = true;
      drain_relevant();  // events of earlier acquisitions
      return;
    }
    if (tried) return;
    tried = true;
    std::string dir = lockfile.parent_path().string();
    if (dir.empty()) dir = ".";
    if (options.wait == LinkWait::automatic && !is_local_filesystem(dir)) return;
    UniqueFd created(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
    if (!created.valid()) return;
    if (::inotify_add_watch(created.get(), dir.c_str(),
                            IN_DELETE | IN_MOVED_FROM | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF |
                                IN_ONLYDIR) < 0) {
      return;
    }
    fd = std::move(created);
    use_notify_ = true;
#else
    (void)fd;
    (void)tried;
#endif
  }

  // Returns early when `stop` is stopped.
  void wait_until(Clock::time_point until, detail::StopWait& stop) noexcept {
    const auto now = Clock::now();
    if (until <= now) return;
#if defined(LOCKSMITH_OS_LINUX)
    if (use_notify_) {
      until = std::min(until, now + kNotifyBackstop);
      while (Clock::now() < until && !stop.stopped()) {
        if (stop.wait_until(until, fd_.get()) && drain_relevant()) return;
      }
      return;
    }
#endif
    // Backoff with jitter: sleep backoff * U[0.5, 1.5), then double it up to the maximum.
    const auto base = std::chrono::duration_cast<std::chrono::nanoseconds>(backoff_).count();
    const auto jittered = std::chrono::nanoseconds(
        base / 2 + static_cast<long long>(
                       jitter_random() % static_cast<std::uint64_t>(std::max<long long>(base, 1))));
    stop.wait_until(now + std::min<Clock::duration>(jittered, until - now));
    backoff_ = std::min<Clock::duration>(backoff_ * 2, options_.backoff_max);
  }

 private:
#if defined(LOCKSMITH_OS_LINUX)
  // Reads all pending events; true when one concerns the lock file (or the watch itself).
  bool drain_relevant() noexcept {
    alignas(struct inotify_event) std::array<char, 4096> buf{};
    bool relevant = false;
    for (;;) {
      const ssize_t n = ::read(fd_.get(), buf.data(), buf.size());
      if (n <= 0) return relevant || (n < 0 && errno != EAGAIN && errno != EINTR);
      for (ssize_t off = 0; off < n;) {
        const auto* ev = reinterpret_cast<const struct inotify_event*>(buf.data() + off);
        if ((ev->mask & (IN_Q_OVERFLOW | IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF)) != 0 ||
            (ev->len > 0 && name_ == ev->name)) {
          relevant = true;
        }
        off += static_cast<ssize_t>(sizeof(struct inotify_event) + ev->len);
      }
    }
  }
#endif

  std::string name_;
  UniqueFd& fd_;
  bool use_notify_ = false;
  Clock::duration backoff_;
  const LinkLockOptions& options_;
};

// Converts a system_clock instant to the steady clock of deadlines.
Clock::time_point to_steady(SysClock::time_point t) noexcept {
  const auto sys_now = SysClock::now();
  const auto now = Clock::now();
  if (t <= sys_now) return now;
  return now + std::chrono::duration_cast<Clock::duration>(t - sys_now);
}

}  // namespace

const std::string& link_lock_hostname() {
  static const std::string name = compute_fqdn();
  return name;
}

LinkLock::LinkLock(std::filesystem::path lockfile, LinkLockOptions options)
    : lockfile_(std::move(lockfile)),
      lockfile_str_(lockfile_.string()),
      break_str_(lockfile_str_ + ".break"),
      options_(std::move(options)),
      hostname_(options_.hostname.empty() ? link_lock_hostname() : options_.hostname) {}

LinkLock::~LinkLock() {
  // Never throws; errors cannot be reported here.
  if (held_) LinkLock::release();  // this class's own release: no virtual dispatch here
  drop_claim();
}

std::error_code LinkLock::prepare_claim() noexcept {
  const long pid = detail::current_pid();
  if (!claim_.empty() && claim_pid_ == pid) return {};
  // First use, or a forked child: a fresh claim with our pid. The parent's claim is not ours.
  claim_fd_.reset();  // in a forked child: our copies of the parent's fds
  notify_fd_.reset();
  notify_tried_ = false;
  claim_expiry_ns_ = -1;
  std::string random;
  if (std::error_code ec = detail::random_claim_number(random)) return ec;
  const char sep = options_.separator;
  try {
    claim_ = lockfile_str_ + sep + hostname_ + sep + std::to_string(pid) + sep + random;
  } catch (...) {
    return std::make_error_code(std::errc::not_enough_memory);
  }
  claim_pid_ = pid;
  return {};
}

std::error_code LinkLock::write_claim() noexcept {
  claim_fd_.reset();
  UniqueFd fd(detail::retry_on_eintr([&] {
    return ::open(claim_.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
                  static_cast<mode_t>(options_.permissions));
  }));
  if (!fd.valid()) return detail::last_error();
  // On failure (ENOSPC, EDQUOT, EIO) remove the claim we created: an empty or partial claim
  // would be left behind. The name is ours alone (it holds our pid and random number).
  const auto discard = [&](std::error_code ec) {
    fd.reset();
    ::unlink(claim_.c_str());
    return ec;
  };
  if (std::error_code ec = detail::write_all(fd.get(), claim_)) return discard(ec);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return discard(detail::last_error());
  claim_dev_ = static_cast<std::uint64_t>(st.st_dev);
  claim_ino_ = static_cast<std::uint64_t>(st.st_ino);
  claim_fd_ = std::move(fd);
  return {};
}

std::error_code LinkLock::touch_claim() noexcept {
  const Expiry e = expiry_after(options_.lifetime);
  if (claim_fd_.valid()) {
    // Close to the expiry we last wrote, and nobody else touched the inode (only a breaker
    // does): keep it, an fstat is much cheaper than a journalled utime.
    struct stat st {};
    if (claim_expiry_ns_ >= 0 && claim_expiry_ns_ <= e.ns &&
        e.ns - claim_expiry_ns_ <= rewrite_tolerance(options_.lifetime).count() &&
        ::fstat(claim_fd_.get(), &st) == 0 && ns_of(st.st_mtim) == claim_expiry_ns_ &&
        ns_of(st.st_atim) == claim_expiry_ns_) {
      return {};
    }
    // The fd may name an orphan when someone removed our claim; link() then reports ENOENT.
    if (::futimens(claim_fd_.get(), e.times.data()) == 0) {
      claim_expiry_ns_ = e.ns;
      valid_until_.store(e.steady.time_since_epoch().count(), std::memory_order_release);
      return {};
    }
  }
  if (std::error_code ec = write_claim()) return ec;
  if (::futimens(claim_fd_.get(), e.times.data()) != 0) return detail::last_error();
  claim_expiry_ns_ = e.ns;
  valid_until_.store(e.steady.time_since_epoch().count(), std::memory_order_release);
  return {};
}

bool LinkLock::lockfile_is_claim() const noexcept {
  if (!claim_fd_.valid()) return false;
  struct stat st {};
  if (::stat(lockfile_str_.c_str(), &st) != 0) return false;
  return static_cast<std::uint64_t>(st.st_dev) == claim_dev_ &&
         static_cast<std::uint64_t>(st.st_ino) == claim_ino_;
}

std::error_code LinkLock::attempt(Attempt& out) noexcept {
  out = {};
  bool rewrote = false;
  for (int race = 0; race < kRaceRetries; ++race) {
    if (::link(claim_.c_str(), lockfile_str_.c_str()) == 0) {
      out.got = true;
      return {};
    }
    const int err = errno;
    if (is_missing(err)) {
      // Our claim vanished (removed by someone breaking our old lock), or the directory did.
      if (rewrote) return {err, std::generic_category()};
      if (std::error_code ec = write_claim()) return ec;
      if (std::error_code ec = touch_claim()) return ec;
      rewrote = true;
      continue;
    }
    if (err != EEXIST) return {err, std::generic_category()};
    struct stat st {};
    if (::lstat(lockfile_str_.c_str(), &st) != 0) {
      const int serr = errno;
      if (is_missing(serr)) continue;  // released between link() and stat(): try again
      return {serr, std::generic_category()};
    }
    if (static_cast<std::uint64_t>(st.st_dev) == claim_dev_ &&
        static_cast<std::uint64_t>(st.st_ino) == claim_ino_) {
      // Our link did happen (a lost NFS reply, retransmitted): the lock is ours.
      out.got = true;
      return {};
    }
    if (!S_ISREG(st.st_mode)) return not_a_lock_file(st.st_mode);
    out.break_at = mtime_of(st) + options_.clock_slop;
    out.breakable = SysClock::now() > out.break_at;
    return {};
  }
  return {};
}

std::error_code LinkLock::aside_name(std::string& out) const noexcept {
  std::string hex;
  if (std::error_code ec = detail::random_hex(8, hex)) return ec;
  try {
    out = lockfile_str_ + ".break." + hex;
  } catch (...) {
    return std::make_error_code(std::errc::not_enough_memory);
  }
  return {};
}

std::error_code LinkLock::take_break_lock(bool& taken, SysClock::time_point& retry_at) noexcept {
  taken = false;
  for (int race = 0; race < kRaceRetries; ++race) {
    // A link of our claim: atomic on NFS too, the same as the lock itself, and its ctime (set by
    // link(), never by utime) says when it was taken.
    if (::link(claim_.c_str(), break_str_.c_str()) == 0) {
      taken = true;
      return {};
    }
    const int err = errno;
    if (is_missing(err)) return {};  // our claim vanished: attempt() rewrites it
    if (err != EEXIST) return {err, std::generic_category()};
    struct stat st {};
    if (::lstat(break_str_.c_str(), &st) != 0) {
      const int serr = errno;
      if (is_missing(serr)) continue;  // released meanwhile
      return {serr, std::generic_category()};
    }
    if (same_inode(st, claim_dev_, claim_ino_)) {  // a lost NFS reply of our link
      taken = true;
      return {};
    }
    const auto stale_at = ctime_of(st) + kBreakLockStale + options_.clock_slop;
    const auto now = SysClock::now();
    if (now <= stale_at) {
      retry_at = std::min(stale_at, now + kBreakLockRetry);
      return {};
    }
    // Left by a crashed breaker. Removed only if it is still the one judged stale: another
    // breaker may have removed it and taken a fresh one meanwhile.
    std::string aside;
    if (std::error_code ec = aside_name(aside)) return ec;
    Removal r{};
    if (std::error_code ec =
            remove_if_inode(break_str_, aside, static_cast<std::uint64_t>(st.st_dev),
                            static_cast<std::uint64_t>(st.st_ino), r)) {
      return ec;
    }
  }
  retry_at = SysClock::now() + kBreakLockRetry;
  return {};
}

void LinkLock::release_break_lock() noexcept {
  std::string aside;
  if (aside_name(aside)) {
    // No name to move it to: unlink when it is still ours (the window of a plain unlink is
    // only there when we held it past kBreakLockStale).
    struct stat st {};
    if (::lstat(break_str_.c_str(), &st) == 0 && same_inode(st, claim_dev_, claim_ino_)) {
      ::unlink(break_str_.c_str());
    }
    return;
  }
  Removal r{};
  (void)remove_if_inode(break_str_, aside, claim_dev_, claim_ino_, r);
}

std::error_code LinkLock::try_break(bool& broke, SysClock::time_point& retry_at) noexcept {
  broke = false;
  retry_at = {};
  // Breakers take turns: judging the lock file and removing it is not atomic, so two breakers
  // that both judged the dead lock would otherwise both remove "it", the second removing the
  // fresh lock of the first. Under the break lock the lock file is judged again, from scratch.
  bool taken = false;
  if (std::error_code ec = take_break_lock(taken, retry_at)) return ec;
  if (!taken) {
    if (retry_at == SysClock::time_point{}) broke = true;  // our claim vanished: retry now
    return {};
  }
  std::error_code result;
  // The lock file as it is now (after any break by the breaker before us).
  UniqueFd fd(detail::retry_on_eintr([&] {
    return ::open(lockfile_str_.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
  }));
  struct stat st {};
  std::string content;
  std::optional<LinkClaim> claim;
  if (!fd.valid()) {
    const int err = errno;
    if (is_missing(err)) broke = true;  // gone already: just retry
    // A symlink or unreadable file is never broken.
  } else if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    // Not a lock file.
  } else if (!(SysClock::now() > mtime_of(st) + options_.clock_slop)) {
    broke = true;  // refreshed, or a fresh lock replaced it: attempt() judges it again
  } else if (!read_fd(fd.get(), content)) {
    claim = parse_link_claim(content, options_.separator);
    // Not a claim: never break a foreign file.
    if (claim && !detail::claim_names_lock(*claim, lockfile_, options_.separator)) claim.reset();
  }
  if (claim) {
    // Like flufl: touch it first, so that flufl waiters do not break it as well. Touching the
    // inode we judged (not the path) cannot extend a fresh lock that replaced it.
    const Expiry e = expiry_after(options_.lifetime);
    ::futimens(fd.get(), e.times.data());  // EPERM (another owner) is fine, as in flufl
    struct stat bst {};
    if (::lstat(break_str_.c_str(), &bst) != 0 || !same_inode(bst, claim_dev_, claim_ino_)) {
      // We were paused past kBreakLockStale and our break lock was removed: another breaker
      // may be at work. Judge again from the start.
      broke = true;
      return {};
    }
    std::string aside;
    Removal r = Removal::absent;
    result = aside_name(aside);
    if (!result) {
      result = remove_if_inode(lockfile_str_, aside, static_cast<std::uint64_t>(st.st_dev),
                               static_cast<std::uint64_t>(st.st_ino), r);
    }
    if (!result) broke = true;  // removed, gone, or replaced meanwhile (put back): retry
    if (!result && r == Removal::removed) {
      // Remove the old holder's claim, but only a claim file of this lock in this directory.
      const auto first = content.find_first_not_of(kSpace);
      const std::string winner =
          content.substr(first, content.find_last_not_of(kSpace) - first + 1);
      const std::filesystem::path winner_path(winner);
      const std::filesystem::path claimed_lock(claim->lockfile);
      if (winner != claim_ && winner_path.parent_path() == lockfile_.parent_path() &&
          claimed_lock.filename() == lockfile_.filename()) {
        ::unlink(winner.c_str());  // leftovers are only untidy
      }
    }
  }
  release_break_lock();
  return result;
}

std::error_code LinkLock::acquire(LockMode mode, Clock::time_point deadline) noexcept {
  if (mode != LockMode::exclusive) return make_error_code(errc::unsupported);
  if (held_) {
    if (claim_pid_ == detail::current_pid()) {
      return std::make_error_code(std::errc::resource_deadlock_would_occur);
    }
    held_ = false;  // a forked child's copy of the parent's lock
  }
  if (stop_.stop_requested()) return make_error_code(errc::cancelled);
  const bool wait_allowed = deadline > Clock::now();
  // A directory, device, FIFO or symlink at the lock path: say so before making a claim.
  struct stat path_st {};
  if (::lstat(lockfile_str_.c_str(), &path_st) == 0 && !S_ISREG(path_st.st_mode)) {
    return not_a_lock_file(path_st.st_mode);
  }
  if (std::error_code ec = prepare_claim()) return ec;
  if (std::error_code ec = touch_claim()) {
    if (!options_.keep_claim) drop_claim();
    return ec;
  }

  std::optional<ChangeWaiter> waiter;
  detail::StopWait stop(stop_);
  for (bool first = true;; first = false) {
    // The claim carries the expiry the lock gets when link() succeeds: after a wait it must be
    // renewed first (flufl touches right after linking, which leaves a short window where a
    // just-taken lock looks expired). Kept when still within rewrite_tolerance (one fstat).
    if (!first) {
      if (std::error_code ec = touch_claim()) {
        if (!options_.keep_claim) drop_claim();
        return ec;
      }
    }
    Attempt a;
    if (std::error_code ec = attempt(a)) {
      if (!options_.keep_claim) drop_claim();
      return ec;
    }
    if (!a.got && a.breakable) {
      bool broke = false;
      SysClock::time_point retry_at{};
      if (std::error_code ec = try_break(broke, retry_at)) {
        if (!options_.keep_claim) drop_claim();
        return ec;
      }
      if (broke) continue;
      if (retry_at != SysClock::time_point{}) {
        // Another breaker is at work: look again soon (or when its break lock goes stale).
        a.breakable = false;
        a.break_at = retry_at;
      }
    }
    if (a.got) {
      held_ = true;
      return {};
    }
    const auto now = Clock::now();
    if (now >= deadline) {
      if (!options_.keep_claim) drop_claim();
      return make_error_code(wait_allowed ? errc::timeout : errc::busy);
    }
    if (!waiter) {
      // Watch before the next attempt, so that a release after it cannot be missed.
      try {
        waiter.emplace(lockfile_, options_, notify_fd_, notify_tried_);
      } catch (...) {
        return std::make_error_code(std::errc::not_enough_memory);
      }
      continue;
    }
    Clock::time_point until = deadline;
    if (!a.breakable) until = std::min(until, to_steady(a.break_at) + 1ms);
    waiter->wait_until(until, stop);
    if (stop.stopped()) {
      if (!options_.keep_claim) drop_claim();
      return make_error_code(errc::cancelled);
    }
  }
}

std::error_code LinkLock::release() noexcept {
  if (!held_) return make_error_code(errc::not_locked);
  held_ = false;
  if (claim_pid_ != detail::current_pid()) return make_error_code(errc::not_locked);
  std::error_code ec;
  if (lockfile_is_claim()) {
    if (::unlink(lockfile_str_.c_str()) != 0 && !is_missing(errno)) ec = detail::last_error();
  } else {
    ec = make_error_code(errc::lock_lost);
  }
  if (!options_.keep_claim) drop_claim();
  return ec;
}

void LinkLock::drop_claim() noexcept {
  if (claim_.empty() || claim_pid_ != detail::current_pid()) return;
  if (claim_fd_.valid()) {
    struct stat path_st {};
    // Remove the claim path only while it still names our claim file.
    if (::stat(claim_.c_str(), &path_st) == 0 &&
        static_cast<std::uint64_t>(path_st.st_ino) == claim_ino_ &&
        static_cast<std::uint64_t>(path_st.st_dev) == claim_dev_) {
      ::unlink(claim_.c_str());
    }
    claim_fd_.reset();
  }
}

std::error_code LinkLock::refresh(std::optional<std::chrono::milliseconds> lifetime) noexcept {
  if (lifetime) options_.lifetime = *lifetime;
  if (!is_locked()) return make_error_code(errc::not_locked);
  return {};
}

bool LinkLock::is_locked() noexcept {
  if (claim_.empty() || claim_pid_ != detail::current_pid() || !claim_fd_.valid()) return false;
  const Expiry e = expiry_after(options_.lifetime);
  if (::futimens(claim_fd_.get(), e.times.data()) != 0) return false;
  claim_expiry_ns_ = e.ns;
  if (!lockfile_is_claim()) return false;
  valid_until_.store(e.steady.time_since_epoch().count(), std::memory_order_release);
  return true;
}

std::error_code LinkLock::keep_alive() noexcept {
  if (!held_ || claim_pid_ != detail::current_pid()) return make_error_code(errc::not_locked);
  // Past expiry + slop a waiter may be breaking the lock right now (it checked the age, touched
  // and is about to unlink): a renewal cannot win that race, so the hold is over.
  if (Clock::now() > valid_until() + options_.clock_slop) return make_error_code(errc::lock_lost);
  if (!claim_fd_.valid()) return make_error_code(errc::lock_lost);
  const Expiry e = expiry_after(options_.lifetime);
  if (::futimens(claim_fd_.get(), e.times.data()) != 0) return detail::last_error();
  claim_expiry_ns_ = e.ns;
  if (!lockfile_is_claim()) return make_error_code(errc::lock_lost);
  valid_until_.store(e.steady.time_since_epoch().count(), std::memory_order_release);
  return {};
}

std::optional<std::chrono::system_clock::time_point> LinkLock::expiration() const {
  struct stat st {};
  if (::stat(lockfile_str_.c_str(), &st) != 0) {
    const int err = errno;
    if (is_missing(err)) return std::nullopt;
    throw_if_error({err, std::generic_category()}, "cannot stat lock file", lockfile_str_);
  }
  return mtime_of(st);
}

LinkState LinkLock::state() const {
  UniqueFd fd(detail::retry_on_eintr(
      [&] { return ::open(lockfile_str_.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY); }));
  if (!fd.valid()) {
    const int err = errno;
    if (is_missing(err)) return LinkState::unlocked;
    throw_if_error({err, std::generic_category()}, "cannot read lock file", lockfile_str_);
  }
  std::string content;
  struct stat st {};
  if (std::error_code ec = read_fd(fd.get(), content)) {
    throw_if_error(ec, "cannot read lock file", lockfile_str_);
  }
  if (::fstat(fd.get(), &st) != 0) {
    throw_if_error(detail::last_error(), "cannot stat lock file", lockfile_str_);
  }
  const auto claim = parse_link_claim(content, options_.separator);
  if (!claim || !detail::claim_names_lock(*claim, lockfile_, options_.separator)) {
    return LinkState::unknown;
  }
  const auto pid = detail::parse_claim_pid(claim->pid);
  if (!pid) return LinkState::unknown;
  if (claim->hostname != hostname_) return LinkState::unknown;
  const bool expired = mtime_of(st) < SysClock::now();
  if (*pid == detail::current_pid()) return expired ? LinkState::ours_expired : LinkState::ours;
  if (pid_exists(*pid)) return expired ? LinkState::theirs_expired : LinkState::unknown;
  return LinkState::stale;
}

}  // namespace locksmith
