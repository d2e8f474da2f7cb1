// Where a lock file lives, and what that mount is known to do to locks.
//
// A lock call can succeed and still exclude nobody: an NFS mount with `local_lock=all` (or
// `nolock`) keeps flock and fcntl locks inside the client, a cifs mount with `nobrl` keeps
// byte-range locks local, sshfs forwards no locks to the server, and a FUSE daemon forwards them
// only if it implements them (bindfs with --enable-lock-forwarding; and even then it re-owns
// POSIX locks). AutoLock reads this to refuse such mechanisms (auto_lock.hpp); `locksmith probe
// --save` records what it measured on a mount in a VerdictStore, which AutoLock reads too.
//
//   identify_mount(path)       the mount holding path (Linux: /proc/self/mountinfo + statfs)
//   known_local_only(m, b)     why backend b is known not to exclude other clients of m, or ""
//   VerdictStore               saved probe verdicts per mount, ignored once the mount changed
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "locksmith/lock.hpp"

namespace locksmith {

struct MountInfo {
  // The mount table's type ("ext4", "nfs4", "fuse.sshfs", "fuse", "cifs"), else the statfs
  // magic's name, else "unknown".
  std::string type;
  std::uint64_t magic = 0;  // statfs f_type (Linux); 0 where unknown
  std::string fsid;         // statfs f_fsid, hex ("" where unknown)
  std::string mount_point;  // the mount holding the path ("" where unknown)
  std::string source;       // what is mounted there: "/dev/loop0", "server:/export", "tmpfs"
  std::string options;      // per-mount options, then the superblock's ("rw,relatime,...")
};

// The mount that holds `path` (the path itself if it exists, else its parent directory).
// Errors name no path; the caller adds it.
std::error_code identify_mount(const std::filesystem::path& path, MountInfo& out);

// Whether the mount option list `options` ("a,b=c,...") has `name` (with any value when `name`
// ends in '=': "local_lock=" matches "local_lock=all" and gives "all" through `value`).
bool has_mount_option(std::string_view options, std::string_view name,
                      std::string* value = nullptr);

// Why `backend` is known to lock only inside this client (so processes on other clients of the
// same files are not excluded) on mount `m`, or "" when nothing is known against it. Covers NFS
// local_lock= and nolock, cifs/smb3 nobrl, sshfs, and FUSE daemons (whose lock forwarding is not
// visible in the mount table: unknown counts as local, unless a saved probe verdict says SAFE).
std::string known_local_only(const MountInfo& m, Backend backend);
// True for FUSE mounts ("fuse", "fuse.*", "fuseblk").
bool is_fuse(const MountInfo& m) noexcept;

// The running kernel ("6.1.0-18-amd64"; Windows: "windows"): saved verdicts are per kernel.
std::string kernel_release();

// Probe verdicts saved per mount. A record belongs to one mount: its type, fsid, source, mount
// point, options and the kernel; a record whose mount differs in any of these today is stale and
// ignored (the mount was remounted with other options, the kernel was upgraded, another
// filesystem is mounted there). The file is text, one record per line, replaced atomically.
struct SavedVerdict {
  std::string primitive;      // the probe's name: "flock", "fcntl", "ofd", "link", ...
  std::string verdict;        // "SAFE", "UNSAFE", "UNSUPPORTED", "INCONCLUSIVE"
  std::int64_t saved_at = 0;  // Unix seconds
  std::string reason;         // the probe's one-line reason
  // The other mount of the same storage the probe's competitors also used (--peer-dir), "" when
  // it ran on this mount only. A FUSE mount is trusted only on a verdict measured across mounts:
  // locks local to one mount exclude the processes on it and nobody else.
  std::string peer;
};

class VerdictStore {
 public:
  // $LOCKSMITH_VERDICTS if set; else /var/lib/locksmith/verdicts for root; else
  // $XDG_STATE_HOME/locksmith/verdicts (~/.local/state/locksmith/verdicts); Windows:
  // %LOCALAPPDATA%\locksmith\verdicts.
  static std::filesystem::path default_path();

  explicit VerdictStore(std::filesystem::path file = default_path());

  // The store in `file` as loaded by this process, read again only when the file changed (its
  // size or modification time: every save replaces it), so that each new AutoLock costs a stat,
  // not a parse. A missing or unreadable file gives an empty store (no evidence either way).
  static std::shared_ptr<const VerdictStore> cached(const std::filesystem::path& file);

  // Reads the file; a missing file is an empty store. Lines that do not parse are dropped (and
  // counted in dropped()); an unreadable file is an error.
  std::error_code load();
  // The verdict saved for `primitive` on mount `m` by this kernel, if any and not stale.
  std::optional<SavedVerdict> find(const MountInfo& m, std::string_view primitive) const;
  // Adds or replaces the record of `primitive` on `m`.
  void put(const MountInfo& m, const SavedVerdict& v);
  // Writes the store atomically (creating its directory, mode 0755 / file 0644); records of
  // other mounts are kept as loaded.
  std::error_code save() const;
  // load(), put() each of `verdicts`, save(), under an exclusive lock on FILE.lock (two probes
  // saving at once keep both their records).
  std::error_code update(const MountInfo& m, const std::vector<SavedVerdict>& verdicts);

  const std::filesystem::path& file() const noexcept { return file_; }
  std::size_t size() const noexcept { return records_.size(); }
  std::size_t dropped() const noexcept { return dropped_; }

 private:
  struct Record {
    std::string key;  // the mount's identity and the kernel, escaped and joined
    SavedVerdict verdict;
  };
  static std::string key_of(const MountInfo& m);

  std::filesystem::path file_;
  std::vector<Record> records_;
  std::size_t dropped_ = 0;
};

}  // namespace locksmith
