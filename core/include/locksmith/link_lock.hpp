// LinkLock: the NFS-safe hard-link lock of flufl.lock, byte-compatible with it, so that C++ and
// Python (flufl.lock 5.x .. 9.x) processes exclude each other on the same lock file.
//
// Protocol (flufl.lock's, unchanged)
//  - Each locker owns a claim file `<lockfile>|<hostname>|<pid>|<random>` in the lock file's
//    directory, whose content is exactly its own path (no newline). <hostname> is the FQDN as
//    Python's socket.getfqdn() computes it, <random> a decimal integer in [0, 2^63) from the OS
//    random source.
//  - The lock is taken by link(claim, lockfile): held when link() succeeds, or when it fails with
//    EEXIST but the lock file is our claim (an NFS retransmission of a link that did happen).
//  - The lock's expiry is the inode's mtime (atime = mtime): now + lifetime, to the nanosecond
//    (flufl.lock writes and reads float seconds through os.utime / st_mtime, so sub-second
//    lifetimes work both ways), set on the claim before linking and by refresh().
//  - A waiter breaks a lock only when now > mtime + clock_slop AND the lock file's content parses
//    as a claim; a foreign file at the lock path is never touched. A claim is read from the right
//    (the last three '|'-separated fields are host, pid and random; the rest is the lock file
//    path, which may itself contain '|'). Four fields are always a claim (flufl's rule); more are
//    a claim only when the path part ends in this lock file's name.
//  - Breaking (locksmith's addition, invisible to flufl): breakers take turns under a break lock,
//    link(claim, `<lockfile>.break`); under it the lock file is opened and judged again (regular
//    file, expiry + clock_slop passed, content a claim of this lock), touched through that fd
//    (like flufl, so that flufl waiters back off), and removed by rename to
//    `<lockfile>.break.<random hex>`: when the inode that moved is not the one judged, it is
//    linked back. Then the holder's claim file is unlinked and the break lock released (removed
//    the same way). A break lock is held for a few system calls; one older (by its ctime, which
//    link() sets) than 1 s + clock_slop was left by a crashed breaker and is removed, again by
//    rename-aside and inode check. Do not use `<lockfile>.break` as another lock's file.
//  - Each link() attempt uses a claim whose expiry is renewed just before (flufl touches right
//    after linking): a waiter that waited longer than the lifetime never takes the lock already
//    expired.
//  - A lock path containing '|': we break such a crashed lock, and so does flufl.lock 5.x (whose
//    _break reads no fields); flufl.lock's details/state cannot parse it (flufl splits into
//    exactly four fields), and flufl.lock 6.0 and later, which break only four-field claims, never
//    break it: avoid '|' in lock paths shared with flufl.
//  - release() unlinks the lock file if it is still our claim, never anyone else's.
//
// Semantics
//  - Owner: the claim file, i.e. this object in this process (hostname + pid + random). Two
//    LinkLock objects, even in one process, exclude each other. One object is not thread-safe.
//  - fork(): the child's copy refers to the parent's claim (the pid in it is the parent's). In a
//    process whose pid differs from the one that acquired, release() and the destructor forget
//    the lock without touching any file and return errc::not_locked; a later acquire() there
//    makes a fresh claim with the new pid. exec/dup/close do not matter (no fd is held).
//  - NFS-safe: yes. link() is atomic on the server, and the EEXIST + "is it our inode" check
//    covers a lost reply. Clocks of the clients must agree to within clock_slop.
//  - Holder death (even SIGKILL): nothing is released by the OS. The lock expires after its
//    lifetime and is broken by the next waiter once now > expiry + clock_slop (10 s by default,
//    like flufl). A holder that keeps working past its lifetime must refresh(), or run a
//    KeepAlive (keep_alive.hpp), which calls keep_alive() every lifetime/3.
//  - Concurrent breakers: any number of LinkLock waiters breaking one dead lock admit exactly one
//    holder; no window among them (a breaker judges and removes under the break lock, and a
//    removal takes only the inode judged). Remaining windows, all outside that: (1) a flufl.lock
//    breaker that judged the dead lock expired, then touches, reads and unlinks whatever is at
//    the path (flufl's own race among its breakers) can remove the fresh lock that replaced it,
//    ours or flufl's: two holders; (2) a locksmith breaker that finds the path replaced by another
//    file after judging (only flufl breakers or a holder releasing after its expiry + clock_slop
//    do that) puts it back, and it is absent for those microseconds; (3) a breaker paused longer
//    than 1 s + clock_slop inside its break lock, whose lock is then taken over, re-checks that
//    it still owns it before removing, leaving a window of a few system calls.
//  - Loss: someone breaks the lock after expiry + clock_slop, e.g. when the holder was paused
//    past it or did not refresh. keep_alive() finds it (the lock file is no longer our claim) at
//    the next renewal, at most lifetime/3 after it happened; called after expiry + clock_slop it
//    reports the lock lost even when the lock file is still our claim, because a breaker may be
//    unlinking it at that moment. valid_until() is the expiry we last wrote.
//  - Waiting: on a local filesystem (ext4, xfs, btrfs, tmpfs, ...) a waiter sleeps on inotify for
//    the lock file's directory and retries as soon as the lock file is deleted, renamed or
//    touched (with a 1 s backstop). The inotify instance is kept by the object after its first
//    contended wait (one fd, released by the destructor). Where inotify cannot see other clients
//    (NFS, SMB, FUSE, ...) or is unavailable, it retries with exponential backoff and OS-random
//    jitter (1 ms doubling to 100 ms by default). It also wakes when the lock becomes breakable.
//  - Speed: the claim file is kept between acquisitions of one object (refreshed, not rewritten);
//    it is removed by the destructor (or at release() when keep_claim is false, as flufl does).
//  - Windows: not supported yet (acquire returns errc::unsupported).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <system_error>

#include "locksmith/lockable.hpp"
#include "locksmith/unique_fd.hpp"

namespace locksmith {

// How a LinkLock waiter learns that the lock may have become free.
enum class LinkWait {
  automatic,  // inotify on known local filesystems, backoff elsewhere
  notify,     // inotify (backoff when inotify is unavailable)
  backoff,    // exponential backoff with jitter only
};

struct LinkLockOptions {
  // Expected holding time; the expiry written at acquire and refresh (flufl: 15 s). Sub-second
  // values are kept exactly; at least 1 ms.
  std::chrono::milliseconds lifetime{15000};
  // How long lock() waits; nullopt = forever. try_lock*() ignore it.
  std::optional<Clock::duration> timeout;
  // lock() fails at once with AlreadyLocked instead of waiting.
  bool fail_when_locked = false;
  // Host name written in the claim; empty = the FQDN as Python's socket.getfqdn().
  std::string hostname;
  unsigned permissions = 0644;  // claim file creation mode, before the umask
  // Allowed clock skew before an expired lock is broken (flufl's CLOCK_SLOP, fixed at 10 s there).
  std::chrono::milliseconds clock_slop{10000};
  char separator = '|';    // flufl's SEP on POSIX
  bool keep_claim = true;  // keep the claim file between acquisitions (flufl removes it)
  LinkWait wait = LinkWait::automatic;
  Clock::duration backoff_min = std::chrono::milliseconds(1);
  Clock::duration backoff_max = std::chrono::milliseconds(100);
};

// flufl.lock's LockState.
enum class LinkState {
  unlocked,        // no lock file
  ours,            // a claim with our hostname and our pid, not expired
  ours_expired,    // ... expired
  stale,           // our hostname, but no process with that pid
  theirs_expired,  // our hostname, a live process that is not us, expired
  unknown,         // another host, a live process that is not us, or content that is no claim
};

std::string_view to_string(LinkState s) noexcept;

// Who holds the lock, as read from the lock file (flufl's Lock.details).
struct LinkDetails {
  std::string hostname;
  long pid = 0;
  std::string lockfile;  // the lock file path as the holder spelled it
  bool operator==(const LinkDetails&) const = default;
};

// A parsed claim file name / lock file content: lockfile, hostname, pid, random. The pid and
// random fields are kept as text (flufl breaks a 4-field claim whose pid does not parse).
struct LinkClaim {
  std::string lockfile;
  std::string hostname;
  std::string pid;
  std::string random;
};
// Splits `content` (surrounding whitespace stripped, as flufl does) into four fields from the
// right: the lock file path keeps any separators it contains. nullopt with fewer than four.
std::optional<LinkClaim> parse_link_claim(std::string_view content, char separator = '|');

// The host name flufl.lock uses: Python's socket.getfqdn() (computed once per process).
const std::string& link_lock_hostname();

class LinkLock : public Lockable {
 public:
  explicit LinkLock(std::filesystem::path lockfile, LinkLockOptions options = {});
  LinkLock(const LinkLock&) = delete;
  LinkLock& operator=(const LinkLock&) = delete;
  ~LinkLock() override;

  // mode must be exclusive (errc::unsupported otherwise). Acquiring while held:
  // errc::resource_deadlock_would_occur (flufl's AlreadyLockedError). Something at the lock path
  // that can never be a lock file fails at once, without waiting: EISDIR for a directory,
  // errc::symlink_refused for a symlink, errc::not_regular_file for a device, FIFO or socket.
  // A claim that cannot be written (ENOSPC, EDQUOT, EFBIG) is removed, and the error returned.
  std::error_code acquire(LockMode mode, Clock::time_point deadline) noexcept override;
  // errc::not_locked when not held; errc::lock_lost when the lock was broken by someone else
  // meanwhile (whatever is at the lock path then is left alone).
  std::error_code release() noexcept override;
  LockInfo describe() const override;
  bool supports_shared() const noexcept override { return false; }
  Clock::time_point default_deadline() const noexcept override;
  // Supported: a stopped wait returns errc::cancelled within microseconds. The claim file is
  // then removed as after a timeout: at once without keep_claim, else by the destructor.
  bool set_stop_token(const std::stop_token& token) noexcept override {
    stop_ = token;
    return true;
  }

  // Moves the expiry to now + lifetime (and sets the lifetime when given). errc::not_locked
  // when we do not hold it (flufl's refresh(); the claim is touched either way).
  std::error_code refresh(
      std::optional<std::chrono::milliseconds> lifetime = std::nullopt) noexcept;
  // Whether the lock file is our claim. Like flufl's is_locked, this touches our claim (refresh).
  bool is_locked() noexcept;
  // Whether this object believes it holds the lock (no file system access).
  bool owns_lock() const noexcept { return held_; }

  // The holder as read from the lock file; nullopt when there is no lock file or its content is
  // not a claim with a decimal pid (flufl's NotLockedError). Throws LockError on other failures.
  std::optional<LinkDetails> details() const;
  LinkState state() const;
  // The lock file's mtime (the holder's expiry); nullopt when there is no lock file.
  std::optional<std::chrono::system_clock::time_point> expiration() const;

  const std::filesystem::path& lockfile() const noexcept { return lockfile_; }
  // Our claim file path (it changes when a forked child acquires).
  const std::string& claim_path() const noexcept { return claim_; }
  const std::string& hostname() const noexcept { return hostname_; }
  const LinkLockOptions& options() const noexcept { return options_; }
  std::chrono::milliseconds lifetime() const noexcept { return options_.lifetime; }

  // Lock loss (lockable.hpp): keep_alive() is refresh() that tells a broken lock apart:
  // errc::lock_lost when the lock file is not our claim, or when called after our expiry +
  // clock_slop (others may be breaking it); errc::not_locked when not held.
  Clock::duration keep_alive_interval() const noexcept override {
    return Clock::duration(options_.lifetime) / 3;
  }
  std::error_code keep_alive() noexcept override;
  Clock::time_point valid_until() const noexcept override {
    return held_ ? Clock::time_point(Clock::duration(valid_until_.load(std::memory_order_acquire)))
                 : Clock::time_point{};
  }
  std::optional<Clock::duration> expiry_bound() const noexcept override {
    return options_.lifetime + options_.clock_slop;
  }

 private:
  struct Attempt {
    bool got = false;        // the lock is ours
    bool breakable = false;  // held by a claim whose expiry + clock_slop has passed
    std::chrono::system_clock::time_point break_at{};  // when it becomes breakable
  };
  std::error_code prepare_claim() noexcept;
  std::error_code write_claim() noexcept;
  std::error_code touch_claim() noexcept;
  std::error_code attempt(Attempt& out) noexcept;
  // broke: look at the lock file again at once; else retry_at, when set, is when to try again
  // (another breaker holds the break lock).
  std::error_code try_break(bool& broke, std::chrono::system_clock::time_point& retry_at) noexcept;
  std::error_code take_break_lock(bool& taken,
                                  std::chrono::system_clock::time_point& retry_at) noexcept;
  void release_break_lock() noexcept;
  std::error_code aside_name(std::string& out) const noexcept;
  void drop_claim() noexcept;
  bool lockfile_is_claim() const noexcept;

  std::filesystem::path lockfile_;
  std::string lockfile_str_;
  std::string break_str_;  // <lockfile>.break, the lock breakers take turns with
  LinkLockOptions options_;
  std::string hostname_;
  std::string claim_;   // our claim file path
  long claim_pid_ = 0;  // the pid written in claim_
  // Open on our claim while it exists: pins its inode number, so "the lock file is our inode"
  // cannot be fooled by inode reuse after someone removed our claim.
  UniqueFd claim_fd_;
  std::uint64_t claim_dev_ = 0;
  std::uint64_t claim_ino_ = 0;
  std::int64_t claim_expiry_ns_ = -1;  // the expiry we last wrote on the claim (ns since epoch)
  // That expiry on the steady clock (read by the holder while a KeepAlive renews it).
  std::atomic<Clock::rep> valid_until_{0};
  // The inotify instance of waits, created at the first contended wait and kept: closing one
  // costs milliseconds (an RCU grace period), which would land on every wake-up.
  UniqueFd notify_fd_;
  bool notify_tried_ = false;
  bool held_ = false;
  std::stop_token stop_;  // see set_stop_token
};

}  // namespace locksmith
