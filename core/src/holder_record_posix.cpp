// Holder records on POSIX: who we are (/proc/self), whether a recorded holder still runs
// (/proc/<pid>/stat, kill(pid, 0)), and whether a lock directory is on a network filesystem.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <climits>
#include <string>

#include "holder_record.hpp"
#include "locksmith/platform.hpp"
#include "locksmith/unique_fd.hpp"
#include "sys_posix.hpp"

#if defined(LOCKSMITH_OS_LINUX)
#include <sys/vfs.h>
#endif

namespace locksmith::detail {

namespace {

// At most `limit` bytes of a (small, /proc) file; false when it cannot be read.
bool read_small(const std::string& path, std::string& out, std::size_t limit = 4096) {
  const int fd = retry_on_eintr([&] { return ::open(path.c_str(), O_RDONLY | O_CLOEXEC); });
  if (fd < 0) return false;
  UniqueFd owner(fd);
  out.assign(limit, '\0');
  std::size_t got = 0;
  while (got < limit) {
    const ssize_t n = retry_on_eintr([&] { return ::read(fd, out.data() + got, limit - got); });
    if (n < 0) return false;
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  out.resize(got);
  return true;
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

enum class Proc { running, gone, unknown };

struct ProcInfo {
  Proc state = Proc::unknown;
  std::uint64_t start_ticks = 0;  // valid when running and known
  bool start_known = false;
};

// What /proc says about `pid`. A zombie (or dead) process counts as gone: it will never release
// anything. No /proc entry is "gone" only when kill() agrees (hidepid=2 hides live processes).
ProcInfo inspect(long pid) {
  ProcInfo info;
  std::string stat;
  if (read_small("/proc/" + std::to_string(pid) + "/stat", stat)) {
    // "pid (comm) state ppid ...": comm may hold spaces and ')', so fields count from the last ')'.
    const std::size_t paren = stat.rfind(')');
    if (paren == std::string::npos || paren + 2 >= stat.size()) return info;
    std::string_view rest(stat);
    rest.remove_prefix(paren + 2);
    const char state = rest.front();
    if (state == 'Z' || state == 'X' || state == 'x') {
      info.state = Proc::gone;
      return info;
    }
    info.state = Proc::running;
    // Field 3 (state) is token 0, so field 22 (starttime) is token 19.
    for (int field = 3; field < 22; ++field) {
      const std::size_t sp = rest.find(' ');
      if (sp == std::string_view::npos) return info;
      rest.remove_prefix(sp + 1);
    }
    rest = rest.substr(0, rest.find(' '));
    std::uint64_t ticks = 0;
    if (std::from_chars(rest.data(), rest.data() + rest.size(), ticks).ec == std::errc()) {
      info.start_ticks = ticks;
      info.start_known = true;
    }
    return info;
  }
  if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) info.state = Proc::gone;
  return info;
}

std::string raw_hostname() {
  std::array<char, 256> buf{};
  if (::gethostname(buf.data(), buf.size() - 1) != 0) return "localhost";
  return buf.data();
}

bool judgeable_pid(long pid) noexcept { return pid > 0 && pid <= INT_MAX; }

}  // namespace

HolderRecord current_holder() {
  HolderRecord self;
  self.pid = static_cast<long>(::getpid());
  self.host = record_host(raw_hostname());
#if defined(LOCKSMITH_OS_LINUX)
  const ProcInfo me = inspect(*self.pid);
  if (me.start_known) self.start_ticks = me.start_ticks;
  std::string boot;
  if (read_small("/proc/sys/kernel/random/boot_id", boot, 64)) self.boot_id = trim(boot);
  std::array<char, 64> link{};
  const ssize_t n = ::readlink("/proc/self/ns/pid", link.data(), link.size() - 1);
  if (n > 0) {
    // "pid:[4026531836]": the inode names the namespace.
    const std::string_view text(link.data(), static_cast<std::size_t>(n));
    const std::size_t open = text.find('['), close = text.find(']');
    if (open != std::string_view::npos && close > open + 1) {
      self.pid_ns = std::string(text.substr(open + 1, close - open - 1));
    }
  }
#endif
  return self;
}

HolderRecord parse_lockfile_unique_name_here(std::string_view name) {
  return parse_lockfile_unique_name(name, raw_hostname());
}

bool holder_is_gone(const HolderRecord& record, bool empty, const StaleContext& context) {
  // Nothing written at all: every writer fills the lock right after creating it, so a lock still
  // empty after the grace period lost its creator between the two calls.
  if (empty) return context.age >= context.grace;
  const HolderRecord self = current_holder();
  if (record.host && *record.host != *self.host) return false;  // another host's pids mean nothing
  if (record.pid && record.start_ticks && !record.boot_id.empty() && record.host) {
    if (self.boot_id.empty()) return false;           // we cannot tell boots apart
    if (record.boot_id != self.boot_id) return true;  // every process of that boot is gone
    if (!record.pid_ns.empty() && !self.pid_ns.empty() && record.pid_ns != self.pid_ns) {
      return false;  // its pid names a process in another pid namespace
    }
    if (!judgeable_pid(*record.pid)) return false;
    const ProcInfo proc = inspect(*record.pid);
    if (proc.state == Proc::gone) return true;
    // The pid runs: it is the holder only if it started when the holder did (else pid reuse).
    return proc.state == Proc::running && proc.start_known &&
           proc.start_ticks != *record.start_ticks;
  }
  // A bare pid (lockfile's files, or a record from a system without /proc): the pid must be gone
  // on this host, and the lock older than the grace period.
  if (context.age < context.grace) return false;
  if (!record.host && !context.local_fs) return false;  // a shared mount: could be any host's pid
  std::vector<long> pids = record.pid_candidates;
  if (record.pid) pids.assign(1, *record.pid);
  if (pids.empty()) return false;
  for (const long pid : pids) {
    if (!judgeable_pid(pid) || inspect(pid).state != Proc::gone) return false;
  }
  return true;
}

bool local_filesystem(const char* dir) noexcept {
#if defined(LOCKSMITH_OS_LINUX)
  struct statfs fs {};
  if (retry_on_eintr([&] { return ::statfs(dir, &fs); }) != 0) return false;
  // Filesystems that other hosts (or a user-space server) may share: NFS, SMB/CIFS (3 magics),
  // Coda, AFS (2), 9p, Ceph, FUSE, GFS2, OCFS2, Lustre.
  constexpr std::array<unsigned long, 13> kShared = {
      0x6969,     0x517B,     0xFF534D42, 0xFE534D42, 0x73757245, 0x5346414F, 0x6B414653,
      0x01021997, 0x00C36400, 0x65735546, 0x01161970, 0x7461636F, 0x0BD00BD0};
  const auto type = static_cast<unsigned long>(fs.f_type) & 0xFFFFFFFFul;
  for (const unsigned long magic : kShared) {
    if (type == magic) return false;
  }
  return true;
#else
  (void)dir;
  return false;
#endif
}

}  // namespace locksmith::detail
