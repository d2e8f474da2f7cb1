// Path-based file locks: FileLock (portalocker.Lock), RLock, TemporaryFileLock, PidFileLock.
//
// Common semantics
//  - acquire() opens the path (creating it with the configured permissions, never truncating
//    before the lock is held), locks it with the chosen backend, and keeps the fd until release();
//    release() unlocks and closes. The lock file itself is never deleted by FileLock/RLock.
//  - fds are opened O_CLOEXEC | O_NOCTTY, and O_NOFOLLOW unless follow_symlinks is set: a symlink
//    planted at the lock path (e.g. in /tmp) is refused with errc::symlink_refused.
//  - Owner, fork, dup/close, thread and NFS behaviour are those of the backend (see lock.hpp).
//    One FileLock object is not itself thread-safe; use one object per thread, or a mutex.
//  - A failed acquire leaves nothing held and nothing open.
//  - Destruction releases a held lock and never throws.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "locksmith/lockable.hpp"
#include "locksmith/unique_fd.hpp"

namespace locksmith {

// How the lock file is opened; values mirror portalocker's mode strings.
enum class OpenMode {
  append,      // "a": read/write, append, create (the default, like portalocker)
  write,       // "w": read/write, create, truncated only after an exclusive lock is held
  read,        // "r": read-only, must exist (exclusive posix/ofd locks then fail with EBADF)
  read_write,  // "r+": read/write, must exist
};

struct LockOptions {
  LockMode mode = LockMode::exclusive;  // the mode that lock() takes
  // How long lock() waits; nullopt = forever. try_lock*() ignore it.
  std::optional<Clock::duration> timeout;
  // lock() fails at once with AlreadyLocked instead of waiting.
  bool fail_when_locked = false;
  Backend backend = kDefaultBackend;
  OpenMode open_mode = OpenMode::append;
  unsigned permissions = 0644;  // creation mode, before the process umask
  bool follow_symlinks = false;
  // After locking, check that the path still names the locked file (someone may have unlinked or
  // replaced it while we waited) and retry on the new file if not.
  bool check_inode = false;
  // Keep the lock file open between acquisitions: release() unlocks but does not close, and the
  // next acquire() locks the same descriptor, if the path still names that file (one stat and
  // fstat instead of open and close). Ignored with check_inode.
  bool keep_open = false;
};

class BoundedSemaphore;

class FileLock : public Lockable {
 public:
  explicit FileLock(std::filesystem::path path, LockOptions options = {});
  FileLock(FileLock&&) noexcept;
  FileLock& operator=(FileLock&&) noexcept;
  ~FileLock() override;

  std::error_code acquire(LockMode mode, Clock::time_point deadline) noexcept override;
  std::error_code release() noexcept override;
  LockInfo describe() const override;
  Clock::time_point default_deadline() const noexcept override;
  LockMode default_mode() const noexcept override { return options_.mode; }

  bool owns_lock() const noexcept { return fd_.valid(); }
  std::optional<LockMode> held_mode() const noexcept;
  // The locked fd while held (for reading/writing the lock file), else -1.
  native_handle native() const noexcept { return fd_.get(); }
  const std::filesystem::path& path() const noexcept { return path_; }
  const LockOptions& options() const noexcept { return options_; }

 protected:
  // Hook for subclasses: runs while the lock is held, just before release unlocks.
  virtual std::error_code before_unlock() noexcept { return {}; }

 private:
  friend class BoundedSemaphore;  // hands over a slot fd locked by its own waiters
  void adopt(UniqueFd fd, LockMode mode) noexcept {
    fd_ = std::move(fd);
    held_ = mode;
  }

  std::filesystem::path path_;
  LockOptions options_;
  UniqueFd fd_;     // open while held
  UniqueFd spare_;  // keep_open: the unlocked descriptor kept for the next acquire
  LockMode held_ = LockMode::exclusive;
};

// Re-entrant FileLock (portalocker.RLock): acquiring again while held only counts; the lock is
// released when the count returns to zero. Releasing more often than acquired is errc::not_locked.
// Re-entry must ask for the mode already held (errc::invalid_argument otherwise; a mode change
// is not atomic with flock and would briefly drop the lock).
class RLock : public FileLock {
 public:
  using FileLock::FileLock;
  std::error_code acquire(LockMode mode, Clock::time_point deadline) noexcept override;
  std::error_code release() noexcept override;
  unsigned count() const noexcept { return count_; }

 private:
  unsigned count_ = 0;
};

// A lock file that exists only while held (portalocker.TemporaryFileLock, default fail_when_locked
// and inode check on). release() unlinks the path while still holding the lock, then unlocks, so
// a waiter that opened the old inode sees the inode check fail and retries on a fresh file:
// two holders on different inodes cannot happen (portalocker #115).
class TemporaryFileLock : public FileLock {
 public:
  explicit TemporaryFileLock(std::filesystem::path path, LockOptions options = default_options());
  static LockOptions default_options();

 protected:
  std::error_code before_unlock() noexcept override;
};

// "Only one instance of this daemon" (portalocker.PidFileLock): the OS lock is taken on the
// sidecar `<path>.lock` (a TemporaryFileLock), then the process id is written to `path` as ASCII
// digits without newline and fsynced. release() unlinks `path` while still locked. holder_pid()
// reads the pid of whoever holds it.
class PidFileLock : public Lockable {
 public:
  explicit PidFileLock(std::filesystem::path path,
                       LockOptions options = TemporaryFileLock::default_options());

  std::error_code acquire(LockMode mode, Clock::time_point deadline) noexcept override;
  std::error_code release() noexcept override;
  LockInfo describe() const override;
  Clock::time_point default_deadline() const noexcept override {
    return sidecar_.default_deadline();
  }
  bool supports_shared() const noexcept override { return false; }

  // The pid written in the pid file, if it holds a valid one (ours while we hold it).
  std::optional<long> holder_pid() const;
  const std::filesystem::path& path() const noexcept { return path_; }

 private:
  std::filesystem::path path_;
  TemporaryFileLock sidecar_;
};

}  // namespace locksmith
