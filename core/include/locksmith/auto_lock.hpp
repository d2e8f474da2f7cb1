// AutoLock: the lock that works on whatever filesystem holds the path (portalocker's promise of a
// fallback when the primary mechanism is unavailable).
//
// The first acquire tries the mechanisms in order and keeps the first one the filesystem supports:
//   flock   -> fails with ENOLCK / EOPNOTSUPP / EINVAL (e.g. NFS without flock emulation)
//   fcntl   -> fails likewise (e.g. NFS whose lock manager is not running)
//   link    -> flufl.lock's hard-link protocol on PATH.link, which needs nothing but link(2)
// "Busy" and "timeout" mean the mechanism works (someone holds the lock): it is kept. Later
// acquisitions use the kept mechanism; describe().mechanism names it.
//
// A mechanism that works but excludes nobody is refused before it is tried (check_mount):
//   - what the mount table says (mount.hpp, known_local_only): NFS local_lock=all/flock/posix and
//     nolock, cifs nobrl, sshfs, and FUSE daemons, whose lock forwarding the table does not show
//     (a FUSE mount is trusted for a mechanism once `locksmith probe --save` found it SAFE there);
//   - a verdict saved by `locksmith probe --save` for this mount (VerdictStore): UNSAFE refuses.
// Then the next candidate is tried (on such an NFS mount: the link lock). When none is left,
// acquire fails with errc::no_safe_mechanism and refusals() says why each was refused.
//
// Every process that locks PATH must end up with the same mechanism. That holds when the choice is
// made by the filesystem (all processes see the same one); processes on different kinds of mounts
// of one export could choose differently — run `locksmith probe` on each mount to see the choice.
// The link fallback is exclusive only: a shared request then takes it exclusively (safe, stricter).
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "locksmith/file_lock.hpp"
#include "locksmith/link_lock.hpp"
#include "locksmith/lockable.hpp"
#include "locksmith/mount.hpp"

namespace locksmith {

struct AutoLockOptions {
  LockMode mode = LockMode::exclusive;  // the mode that lock() takes
  // How long lock() waits; nullopt = forever. try_lock*() ignore it.
  std::optional<Clock::duration> timeout;
  bool fail_when_locked = false;  // lock() fails at once with AlreadyLocked instead of waiting
  unsigned permissions = 0644;    // creation mode, before the process umask
  bool follow_symlinks = false;
  // The mechanisms tried, in order; empty = flock, fcntl, link (Windows: LockFileEx, link).
  std::vector<Backend> candidates;
  std::chrono::milliseconds link_lifetime{15000};  // the link fallback's lifetime (flufl's)
  // Refuse mechanisms known not to exclude on the mount (see above). Off: trust any that works.
  bool check_mount = true;
  // The saved probe verdicts read by check_mount; empty = VerdictStore::default_path().
  std::filesystem::path verdicts;
};

// Whether `ec` from a lock call means "this filesystem does not do that kind of lock".
bool is_mechanism_unavailable(std::error_code ec) noexcept;

class AutoLock : public Lockable {
 public:
  explicit AutoLock(std::filesystem::path path, AutoLockOptions options = {});
  AutoLock(const AutoLock&) = delete;
  AutoLock& operator=(const AutoLock&) = delete;
  ~AutoLock() override;

  std::error_code acquire(LockMode mode, Clock::time_point deadline) noexcept override;
  std::error_code release() noexcept override;
  // kind "auto"; mechanism "flock", "posix", "windows" or "link" once chosen, "undecided" before.
  LockInfo describe() const override;
  Clock::time_point default_deadline() const noexcept override;
  LockMode default_mode() const noexcept override { return options_.mode; }
  // Lock loss: the chosen mechanism's (only the link fallback can be lost).
  Clock::duration keep_alive_interval() const noexcept override {
    return lock_ ? lock_->keep_alive_interval() : Clock::duration::zero();
  }
  std::error_code keep_alive() noexcept override {
    return lock_ ? lock_->keep_alive() : std::error_code{};
  }
  Clock::time_point valid_until() const noexcept override {
    return lock_ ? lock_->valid_until() : kForever;
  }
  bool lost() const noexcept override { return lock_ && lock_->lost(); }
  std::optional<Clock::duration> expiry_bound() const noexcept override {
    return lock_ ? lock_->expiry_bound() : std::nullopt;
  }

  // The mechanism in use; nullopt until the first acquire that reached the filesystem.
  std::optional<Backend> mechanism() const noexcept { return chosen_; }
  const std::filesystem::path& path() const noexcept { return path_; }
  // The lock file the link fallback uses.
  std::filesystem::path link_path() const;
  // The mechanisms refused by check_mount at the first acquire, each "flock: <why>".
  const std::vector<std::string>& refusals() const noexcept { return refusals_; }

 private:
  std::unique_ptr<Lockable> make(Backend b) const;
  // Why `b` must not be used on this mount, or "" (mount and saved verdicts read once).
  std::string refusal(Backend b);

  std::filesystem::path path_;
  AutoLockOptions options_;
  std::optional<Backend> chosen_;
  std::unique_ptr<Lockable> lock_;  // the chosen mechanism's lock
  std::vector<std::string> refusals_;
  bool mount_read_ = false;
  std::optional<MountInfo> mount_;  // nullopt: could not be identified (nothing refused)
  std::shared_ptr<const VerdictStore> verdicts_;
};

}  // namespace locksmith
