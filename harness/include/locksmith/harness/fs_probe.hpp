// Filesystem identification and semantics experiments for `locksmith probe`.
//
// Every experiment works on files in a scratch directory it creates inside DIR (removed
// afterwards) and, where the semantics is about processes, uses real competing processes: forked
// children that talk to the prober through pipes. Every wait is bounded; every child is reaped.
//
// With a peer directory (the same directory seen through a second mount of the same export),
// the competing process opens the files through the peer path, so the answers describe what
// two clients of the export see of each other.
//
// Facts (name: value), values "yes" / "no" / "unsupported" / "error: <what failed>":
//   fs_type, mount_point, mount_source, mount_options, kernel   identification (free text)
//   peer_same_export          the peer directory shows files created in DIR
//   flock_supported, fcntl_supported, ofd_supported   the lock call works at all (ENOLCK,
//                             EOPNOTSUPP, EINVAL, ... -> "no"); decides UNSUPPORTED verdicts
//   close_any_fd_drops_fcntl  closing another fd of the file dropped the process's fcntl lock
//   flock_fcntl_interact      an flock held by one process blocks another process's fcntl lock
//                             (Linux local filesystems: no; NFS emulates flock with fcntl: yes)
//   flock_shared_across_fork  a forked child shares the parent's flock: it survives the parent's
//                             close and the child's unlock releases it for both
//   two_opens_conflict_flock / _ofd / _fcntl   two open()s in one process conflict
//                             (Linux local: flock yes, ofd yes, fcntl no)
//   o_excl_atomic             racing O_CREAT|O_EXCL creates have exactly one winner every round
//   link_nlink_2              after link(a, b), stat(a) shows st_nlink == 2 (and via the peer)
//   rename_atomic_for_readers readers never see a missing, failed or partial file while a writer
//                             renames complete new versions over it
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "locksmith/harness/report.hpp"
#include "locksmith/mount.hpp"

namespace locksmith::harness {

// What the probe reports of the filesystem: the mount as locksmith::identify_mount sees it (its
// type, statfs magic and fsid, mount point, source and options; mount.hpp).
using FsIdentity = MountInfo;

// Identifies the filesystem holding `dir` from statfs() and, on Linux, /proc/self/mountinfo.
// Throws std::system_error naming the directory when it cannot be examined.
FsIdentity identify_filesystem(const std::filesystem::path& dir);

struct SemanticsOptions {
  std::uint32_t excl_processes = 4;  // o_excl_atomic: racing processes ...
  std::uint32_t excl_rounds = 50;    // ... and rounds
  std::chrono::milliseconds rename_duration{300};
  std::chrono::milliseconds reply_timeout{10000};  // bound on every wait for a child
};

// Runs the experiments in a scratch directory inside `dir` (and, if `peer_dir` is not null, in
// the same scratch directory seen through `peer_dir`). The identification facts come first.
// Throws std::system_error naming the directory when no scratch directory can be made there;
// a failing experiment yields an "error: ..." fact instead.
std::vector<Fact> probe_semantics(const std::filesystem::path& dir,
                                  const std::filesystem::path* peer_dir,
                                  const SemanticsOptions& options = {});

}  // namespace locksmith::harness
