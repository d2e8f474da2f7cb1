// Who holds an existence lock (MkdirLock, PidLockFile), told precisely enough that a waiter can
// decide "the holder is dead" without being fooled by pid reuse, by a reboot or by another host.
//
// On disk the record follows lockfile's pid line, on a second line that lockfile's read_pid
// (first line only) and MkdirLockFile (which never reads its unique file) ignore:
//   <pid>\n
//   locksmith-holder v=1 start=<ticks> boot=<boot id> pidns=<inode> host=<hostname>\n
// start is field 22 of /proc/<pid>/stat (clock ticks since boot), boot is
// /proc/sys/kernel/random/boot_id, pidns the inode of /proc/<pid>/ns/pid; host, last, runs to the
// end of the line. A field we could not learn is left out, and the rule below then uses less.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace locksmith::detail {

struct HolderRecord {
  std::optional<long> pid;
  std::optional<std::uint64_t> start_ticks;
  std::string boot_id;               // empty: unknown
  std::string pid_ns;                // empty: unknown
  std::optional<std::string> host;   // nullopt: unknown (a plain pid file says nothing about it)
  std::vector<long> pid_candidates;  // a name that cannot be split surely: any of these (MkdirLock)
};

// The calling process's record (fields that /proc cannot give are left unknown).
HolderRecord current_holder();

// "<pid>\n" and, with anything more known, the "locksmith-holder" line.
std::string format_holder(const HolderRecord& record);

// lockfile's read_pid_from_pidfile: the first line, stripped, must be an integer.
std::optional<long> parse_pid_line(std::string_view text) noexcept;

// The pid as lockfile's read_pid reads it (first line, stripped, an integer), plus the
// "locksmith-holder" line when it is the second line.
HolderRecord parse_holder(std::string_view text);

// What the name of a file in a MkdirLockFile directory, "%s.%s%s" % (hostname, tname, pid),
// says: the host when it starts with `own_host` + "." (else a host that is not ours), and the pid.
// lockfile's tname ("-" and up to 8 hex digits) runs straight into the decimal pid, so a threaded
// name can often be split several ways: every possible pid is then in pid_candidates.
HolderRecord parse_lockfile_unique_name(std::string_view name, std::string_view own_host);
// The same against this host's name (gethostname, as Python's socket.gethostname()).
HolderRecord parse_lockfile_unique_name_here(std::string_view name);

// A hostname as it is written in a record: no line breaks.
std::string record_host(std::string host);

// What the stale rule may assume about where the lock lives.
struct StaleContext {
  std::chrono::system_clock::duration age{};  // how long ago the lock was last changed
  std::chrono::system_clock::duration grace{};
  bool local_fs = false;  // the lock's directory is on a filesystem no other host can see
};

// Whether the holder named by `record` is certainly gone (the rule is in lockfile_locks.hpp).
// `empty` means the lock says nothing at all (an empty pid file, an empty lock directory).
bool holder_is_gone(const HolderRecord& record, bool empty, const StaleContext& context);

// Whether the filesystem holding `dir` is local (not NFS, SMB, AFS, Ceph, FUSE, ...). Unknown
// counts as not local.
bool local_filesystem(const char* dir) noexcept;

}  // namespace locksmith::detail
