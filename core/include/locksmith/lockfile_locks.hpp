// Lock-file conventions of Python's `lockfile` 0.12 (MkdirLockFile, PIDLockFile) and of
// liblockfile / dotlockfile(1) (`<file>.lock`): MkdirLock, PidLockFile, DotLock.
//
// These locks are *existence* locks: the lock is a directory or file that exists while held.
// Nothing in the kernel ties it to the holder, so (unlike flock/fcntl) nothing releases it when the
// holder dies, and nothing wakes a waiter when it goes away.
//
// Common semantics
//  - A held lock keeps one descriptor (MkdirLock: two) open on what it created, close-on-exec.
//  - Owner: the process (its pid is in the names/contents) and, in it, this object. Another object
//    in the same process does not hold it and is refused like any other process. Not re-entrant:
//    acquire() on a held object fails with std::errc::resource_deadlock_would_occur. One object is
//    not thread-safe; use one object per thread, or a mutex.
//  - Release: release() removes what acquire() created, and only if it is still ours. Called on an
//    object that does not hold the lock it returns errc::not_locked (NotLocked from unlock()) and
//    touches nothing. When the lock was held but someone else has broken or replaced it since,
//    release() removes nothing and returns errc::lock_lost. release() opens no descriptor (it
//    checks the lock through the one it keeps), so it works in a process out of them (EMFILE).
//  - fork(): the child inherits the object's "held" state but not the ownership (the pid differs):
//    its release(), including its destructor, returns errc::not_locked and leaves the parent's lock
//    in place. exec() keeps the lock on disk; the new image has no object for it.
//  - Crash of the holder (SIGKILL, power loss): the lock stays behind on disk. DotLock breaks it
//    by liblockfile's stale rule. MkdirLock and PidLockFile (unlike lockfile, which waits forever)
//    take it over by the stale rule below, by default (StalePolicy::automatic; `stale=off` in a
//    spec restores lockfile's behaviour): a waiter gets the lock of a SIGKILLed holder at its next
//    attempt, at most 128 ms later, or, for a lock written by lockfile itself, once it is
//    `stale_grace` (10 s) old.
//  - Stale rule of MkdirLock and PidLockFile. Their locks record the holder after lockfile's pid
//    line, where lockfile does not look: pid, process start time (field 22 of /proc/PID/stat),
//    boot id (/proc/sys/kernel/random/boot_id), pid namespace and hostname (see each class).
//     * a lock from another host (by its hostname) is never stale;
//     * with the full record: stale when the boot id differs (that boot is over), or the pid has
//       no process or a zombie, or a process whose start time differs (the pid was reused). Never
//       when the process with that pid and start time runs, or when /proc cannot tell (hidepid),
//       or when the holder was in another pid namespace;
//     * with only a pid (lockfile's files, or a holder without /proc): stale only when no process
//       (or a zombie) has that pid, the lock is at least `stale_grace` old, and the host is known
//       to be ours (MkdirLock's names carry it) or the lock is on a local filesystem (a pid file
//       on NFS, SMB, FUSE, ... could be any host's);
//     * with nothing (an empty pid file, an empty lock directory: the creator died between
//       creating and writing it): stale once `stale_grace` old;
//     * anything else (junk, a foreign file in the directory) is never stale.
//    Hostnames must be unique among the hosts that share a lock directory.
//  - Taking over is race-free on Linux local filesystems: the waiter builds its own lock beside
//    the stale one and swaps the two names in one renameat2(RENAME_EXCHANGE), so the lock name
//    never goes missing and no third process can get in. It then checks that what it swapped out
//    is the inode it judged (held open while judged, so the number cannot be reused); if not (two
//    waiters broke at once and one already holds a fresh lock), it swaps that back untouched and
//    waits. Where the filesystem cannot exchange (NFS), the stale lock is removed if its inode is
//    unchanged, and two breakers racing can, within a few system calls, remove a fresh lock.
//  - Waiting: these protocols give the kernel nothing to wake a waiter with, so a wait with a
//    deadline retries with exponential backoff (1 ms doubling to 128 ms) and ±50 % jitter.
//    A deadline at or before now means one attempt: errc::busy; busy at a later deadline:
//    errc::timeout. A wait stopped through set_stop_token (lockable.hpp) returns errc::cancelled
//    within microseconds; DotLock's temporary file is removed first, as on every failure. Only
//    exclusive mode exists (supports_shared() is false; shared -> unsupported).
//  - Errors are the OS errno (ENOENT for a missing directory, EACCES/EROFS for a read-only one,
//    ENOTDIR/EISDIR/EEXIST for foreign junk of the wrong type); throwing forms name the lock path.
//  - NFS: mkdir(), O_CREAT|O_EXCL (NFSv3+) and link() are atomic on the server, so MkdirLock,
//    PidLockFile and DotLock exclude across clients. The stale rule of MkdirLock and PidLockFile
//    never judges another host's lock (and no bare pid on a network filesystem); DotLock's
//    check_pid only means something on one host: turn it off for shared mounts.
//  - Destruction releases a held lock and never throws.
//  - Windows: these classes exist but acquire() returns errc::unsupported.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <stop_token>
#include <string>

#include "locksmith/lockable.hpp"
#include "locksmith/unique_fd.hpp"

namespace locksmith {

// Whether MkdirLock and PidLockFile take over a lock whose holder is gone (the stale rule above).
enum class StalePolicy {
  off,        // lockfile's behaviour: a crashed holder's lock stays until broken by hand
  automatic,  // the stale rule; the default
};

// MkdirLock — lockfile.mkdirlockfile.MkdirLockFile.
//  - The lock is the directory abspath(path) + ".lock", created with mkdir() (mode 0777 before
//    umask, as os.mkdir). Busy = EEXIST, whatever the existing entry is.
//  - Inside it, a file named like lockfile's unique name "%s.%s%s" % (hostname, tname, pid)
//    with tname = "-%x" % (thread id & 0xffffffff) when `threaded` (lockfile's default; the id is
//    pthread_self(), which is what Python's threading ident is), else "". lockfile only tests that
//    this file exists (it writes it empty); locksmith writes its holder record in it:
//      "<pid>\nlocksmith-holder v=1 start=<ticks> boot=<boot id> pidns=<inode> host=<name>\n".
//    lockfile's release/break_lock remove it like their own, and lockfile's own locks (one empty
//    file, no record) keep working with its release (unlink + rmdir).
//  - release() removes the file, then the directory. A directory whose file is not ours (or that
//    contains more) is not removed: errc::lock_lost.
//  - Stale locks: by the rule above. Each file in the directory names a holder, by its record or,
//    for lockfile's empty file, by its name (host, and the pid; a threaded name "-<hex><pid>" can
//    split several ways, and then every possible pid must be gone); all of them must be gone.
//    A lock taken over has its leftovers removed. break_lock() is lockfile's break_lock(): it
//    removes the directory and every file in it, whoever holds it.
struct MkdirLockOptions {
  std::optional<Clock::duration> timeout;  // lock() waits this long; nullopt = forever
  bool fail_when_locked = false;           // lock() does not wait at all
  bool threaded = true;                    // thread part in the unique name, as lockfile's default
  unsigned permissions = 0777;             // directory mode before umask
  StalePolicy stale = StalePolicy::automatic;
  // A lock that says less than our full record is judged only once it is this old.
  std::chrono::milliseconds stale_grace = std::chrono::seconds(10);
};

class MkdirLock : public Lockable {
 public:
  explicit MkdirLock(std::filesystem::path path, MkdirLockOptions options = {});
  MkdirLock(const MkdirLock&) = delete;
  MkdirLock& operator=(const MkdirLock&) = delete;
  ~MkdirLock() override;

  std::error_code acquire(LockMode mode, Clock::time_point deadline) noexcept override;
  std::error_code release() noexcept override;
  LockInfo describe() const override;
  Clock::time_point default_deadline() const noexcept override;
  bool supports_shared() const noexcept override { return false; }
  bool set_stop_token(const std::stop_token& token) noexcept override {
    stop_ = token;
    return true;
  }

  bool owns_lock() const noexcept { return held_; }
  // Whether the lock directory exists (held by anyone).
  bool is_locked() const noexcept;
  // Removes the lock whoever holds it (lockfile's break_lock). Missing is not an error.
  std::error_code break_lock() noexcept;

  const std::filesystem::path& path() const noexcept { return path_; }
  // abspath(path) + ".lock": the directory.
  const std::filesystem::path& lock_path() const noexcept { return lock_path_; }
  // The unique file inside the directory, for the calling thread (or the one that acquired).
  std::filesystem::path unique_path() const;

 private:
  std::filesystem::path path_;
  std::filesystem::path lock_path_;
  MkdirLockOptions options_;
  bool held_ = false;
  long owner_pid_ = 0;
  std::string unique_name_;  // set while held
  // Kept open while held so that their inodes cannot be reused: release() then recognises a
  // directory or file that someone else re-created under the same names.
  UniqueFd dir_fd_, file_fd_;
  std::stop_token stop_;  // see set_stop_token
};

// PidLockFile — lockfile.pidlockfile.PIDLockFile (and the FHS pid-file convention).
//  - The lock is `path` itself, created with open(O_CREAT|O_EXCL|O_WRONLY, 0644) holding
//    "%d\n" % pid, as lockfile, then the holder record on a second line, which lockfile's
//    read_pid (first line only) and FHS pid-file readers ignore:
//      "<pid>\nlocksmith-holder v=1 start=<ticks> boot=<boot id> pidns=<inode> host=<name>\n".
//    Busy = EEXIST.
//  - release() unlinks it only if it still contains our pid (lockfile: NotMyLock otherwise).
//  - Stale locks: by the rule above (lockfile never breaks them). A plain pid file says nothing of
//    its host, so a bare pid is only judged on a local filesystem.
struct PidLockFileOptions {
  std::optional<Clock::duration> timeout;  // lock() waits this long; nullopt = forever
  bool fail_when_locked = false;
  StalePolicy stale = StalePolicy::automatic;
  // A lock that says less than our full record is judged only once it is this old.
  std::chrono::milliseconds stale_grace = std::chrono::seconds(10);
  unsigned permissions = 0644;  // before umask, as lockfile
};

class PidLockFile : public Lockable {
 public:
  explicit PidLockFile(std::filesystem::path path, PidLockFileOptions options = {});
  PidLockFile(const PidLockFile&) = delete;
  PidLockFile& operator=(const PidLockFile&) = delete;
  ~PidLockFile() override;

  std::error_code acquire(LockMode mode, Clock::time_point deadline) noexcept override;
  std::error_code release() noexcept override;
  LockInfo describe() const override;
  Clock::time_point default_deadline() const noexcept override;
  bool supports_shared() const noexcept override { return false; }
  bool set_stop_token(const std::stop_token& token) noexcept override {
    stop_ = token;
    return true;
  }

  bool owns_lock() const noexcept { return held_; }
  bool is_locked() const noexcept;
  // The pid recorded in the file (lockfile's read_pid: first line, surrounding whitespace and
  // leading zeros ignored), or nullopt when missing or not a number.
  std::optional<long> read_pid() const;
  // Removes the file whoever holds it. Missing is not an error.
  std::error_code break_lock() noexcept;
  const std::filesystem::path& path() const noexcept { return path_; }

 private:
  std::filesystem::path path_;
  PidLockFileOptions options_;
  bool held_ = false;
  long owner_pid_ = 0;
  UniqueFd fd_;           // the file we created, kept open so its inode cannot be reused while held
  std::stop_token stop_;  // see set_stop_token
};

// DotLock — liblockfile's lockfile_create(3) / dotlockfile(1) convention.
//  - Locking `file` creates `file` + ".lock" (dotlockfile takes that name as given). Its content is
//    the holder's pid in ASCII decimal and "\n", as lockfile_create(L_PID) and `dotlockfile -p`
//    write (without -p, dotlockfile writes "0\n").
//  - Created NFS-safely like liblockfile: a temporary file ".lk<pid><random><host>" in the same
//    directory, written and closed, then link()ed to the lock name; success is decided by lstat()
//    of both names showing the same inode, not by link()'s return value (unreliable over NFS).
//    The temporary name is then unlinked.
//  - Stale rule (liblockfile's lockfile_check): a lock is valid when it holds the pid of a live
//    process (kill(pid, 0) succeeds or fails with EPERM); with a pid whose process is gone
//    (ESRCH) it is stale; without a pid (0, empty, junk) it is stale once its mtime is
//    `stale_age` (300 s) old. A stale lock is unlinked (after re-checking its inode) and creation
//    retried at once. With check_pid off, only the age rule is used (what dotlockfile does
//    without -p, and what NFS users need); holders then call touch() more often than stale_age.
//    liblockfile takes "now" from the pre-read atime when a read changes the atime; locksmith uses
//    the system clock. Two breakers racing can remove a fresh lock: the protocol cannot prevent
//    it (liblockfile has the same window).
//  - Interop: `dotlockfile -p` and locksmith exclude each other and break each other's stale
//    locks. Plain `dotlockfile` (no -p) ignores our pid and breaks a live locksmith lock older than
//    5 minutes unless it is touched.
//  - release() unlinks the lock only if it is still the file we linked and holds our pid.
struct DotLockOptions {
  std::optional<Clock::duration> timeout;  // lock() waits this long; nullopt = forever
  bool fail_when_locked = false;
  bool check_pid = true;  // a live pid keeps a lock valid, a dead one makes it stale
  // A lock without a usable pid is stale after this long; nullopt = never by age.
  std::optional<std::chrono::seconds> stale_age = std::chrono::seconds(300);
  unsigned permissions = 0644;  // before umask, as liblockfile
};

class DotLock : public Lockable {
 public:
  // Locks `file`: the lock is `file` + ".lock".
  explicit DotLock(std::filesystem::path file, DotLockOptions options = {});
  DotLock(const DotLock&) = delete;
  DotLock& operator=(const DotLock&) = delete;
  ~DotLock() override;

  std::error_code acquire(LockMode mode, Clock::time_point deadline) noexcept override;
  std::error_code release() noexcept override;
  LockInfo describe() const override;
  Clock::time_point default_deadline() const noexcept override;
  bool supports_shared() const noexcept override { return false; }
  bool set_stop_token(const std::stop_token& token) noexcept override {
    stop_ = token;
    return true;
  }

  bool owns_lock() const noexcept { return held_; }
  bool is_locked() const noexcept;
  // Updates the lock's mtime (lockfile_touch / dotlockfile -t) so the age rule keeps it valid.
  std::error_code touch() noexcept;
  // Lock loss (lockable.hpp): with a stale_age, a peer that judges by age alone (dotlockfile
  // without -p, another host) breaks a lock not touched for that long; keep_alive() is touch()
  // every stale_age/3, errc::lock_lost once the lock file is no longer ours.
  Clock::duration keep_alive_interval() const noexcept override {
    return options_.stale_age ? Clock::duration(*options_.stale_age) / 3 : Clock::duration::zero();
  }
  std::error_code keep_alive() noexcept override { return touch(); }
  // liblockfile's test on the current lock: true when it exists and is valid (not stale).
  bool is_valid() const noexcept;
  const std::filesystem::path& path() const noexcept { return file_; }
  const std::filesystem::path& lock_path() const noexcept { return lock_path_; }

 private:
  std::filesystem::path file_;
  std::filesystem::path lock_path_;
  DotLockOptions options_;
  bool held_ = false;
  long owner_pid_ = 0;
  UniqueFd fd_;           // the file we linked, kept open so its inode cannot be reused while held
  std::stop_token stop_;  // see set_stop_token
};

}  // namespace locksmith
