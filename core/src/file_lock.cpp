#include "locksmith/file_lock.hpp"

#include <charconv>
#include <string>
#include <utility>

#include "file_ops.hpp"

namespace locksmith {
namespace {

// How many times a non-waiting acquire follows a lock file that was replaced under it.
constexpr int kMaxInodeRetries = 16;

}  // namespace

FileLock::FileLock(std::filesystem::path path, LockOptions options)
    : path_(std::move(path)), options_(options) {}

FileLock::FileLock(FileLock&&) noexcept = default;

FileLock& FileLock::operator=(FileLock&& other) noexcept {
  if (this != &other) {
    release();
    path_ = std::move(other.path_);
    options_ = other.options_;
    fd_ = std::move(other.fd_);
    spare_ = std::move(other.spare_);
    held_ = other.held_;
  }
  return *this;
}

FileLock::~FileLock() {
  // Never throws; an unlock error cannot be reported here, and closing releases anyway.
  if (fd_.valid()) {
    locksmith::unlock(fd_.get(), options_.backend);
    fd_.reset();
  }
}

Clock::time_point FileLock::default_deadline() const noexcept {
  return policy_deadline(options_.timeout, options_.fail_when_locked);
}

std::optional<LockMode> FileLock::held_mode() const noexcept {
  if (!fd_.valid()) return std::nullopt;
  return held_;
}

std::error_code FileLock::acquire(LockMode mode, Clock::time_point deadline) noexcept {
  if (fd_.valid()) return std::make_error_code(std::errc::resource_deadlock_would_occur);
  for (int attempt = 0;; ++attempt) {
    UniqueFd fd;
    std::error_code ec;
    if (spare_.valid()) {
      // keep_open: reuse the descriptor if the path still names its file.
      bool same = false;
      if (!detail::names_same_file(spare_.get(), path_, same) && same) fd = std::move(spare_);
      spare_.reset();
    }
    if (!fd.valid()) {
      ec = detail::open_lock_file(path_, options_.open_mode, options_.permissions,
                                  options_.follow_symlinks, fd);
      if (ec) return ec;
    }
    ec = lock_until(fd.get(), mode, options_.backend, deadline);
    if (ec) return ec;  // closing `fd` leaves nothing behind
    if (options_.check_inode) {
      bool same = false;
      ec = detail::names_same_file(fd.get(), path_, same);
      if (ec) return ec;
      if (!same) {
        // The holder we waited for unlinked or replaced the file: our lock is on an orphan.
        fd.reset();
        if (Clock::now() >= deadline && attempt >= kMaxInodeRetries) {
          return make_error_code(deadline == Clock::time_point::min() ? errc::busy : errc::timeout);
        }
        continue;
      }
    }
    if (options_.open_mode == OpenMode::write && mode == LockMode::exclusive) {
      ec = detail::truncate_file(fd.get());
      if (ec) return ec;
    }
    fd_ = std::move(fd);
    held_ = mode;
    return {};
  }
}

std::error_code FileLock::release() noexcept {
  if (!fd_.valid()) return make_error_code(errc::not_locked);
  const std::error_code hook = before_unlock();
  const std::error_code ec = locksmith::unlock(fd_.get(), options_.backend);
  if (!ec && options_.keep_open && !options_.check_inode) {
    spare_ = std::move(fd_);  // unlocked; kept for the next acquire
  } else {
    fd_.reset();  // closing releases the lock even if the unlock call failed
  }
  return hook ? hook : ec;
}

LockInfo FileLock::describe() const {
  LockInfo info;
  info.kind = std::string(kind_name(options_.backend));
  info.mechanism = std::string(to_string(options_.backend));
  info.target = path_.string();
  info.held = fd_.valid();
  info.mode = held_mode();
  return info;
}

std::error_code RLock::acquire(LockMode mode, Clock::time_point deadline) noexcept {
  if (count_ > 0) {
    if (held_mode() != mode) return std::make_error_code(std::errc::invalid_argument);
    ++count_;
    return {};
  }
  const std::error_code ec = FileLock::acquire(mode, deadline);
  if (!ec) count_ = 1;
  return ec;
}

std::error_code RLock::release() noexcept {
  if (count_ == 0) return make_error_code(errc::not_locked);
  if (--count_ > 0) return {};
  return FileLock::release();
}

LockOptions TemporaryFileLock::default_options() {
  LockOptions options;
  options.fail_when_locked = true;
  options.check_inode = true;
  return options;
}

TemporaryFileLock::TemporaryFileLock(std::filesystem::path path, LockOptions options)
    : FileLock(std::move(path), [&] {
        options.check_inode = true;
        return options;
      }()) {}

std::error_code TemporaryFileLock::before_unlock() noexcept {
  // Unlink while still locked, and only if the path is still ours: after a third party replaced
  // it, the path belongs to whoever created the new file.
  // A shared holder unlinks only when it is the last holder (it can turn its lock exclusive
  // without waiting); otherwise the next exclusive locker would create a fresh file beside the
  // remaining shared holders. A failed conversion loses nothing: we are releasing anyway.
  if (held_mode() == LockMode::shared &&
      lock_until(native(), LockMode::exclusive, options().backend, Clock::time_point::min())) {
    return {};
  }
  bool same = false;
  std::error_code ec = detail::names_same_file(native(), path(), same);
  if (ec || !same) return ec;
  return detail::remove_file(path());
}

namespace {
std::filesystem::path sidecar_of(const std::filesystem::path& path) {
  std::filesystem::path sidecar = path;
  sidecar += ".lock";
  return sidecar;
}
}  // namespace

PidFileLock::PidFileLock(std::filesystem::path path, LockOptions options)
    : path_(std::move(path)), sidecar_(sidecar_of(path_), options) {}

std::error_code PidFileLock::acquire(LockMode mode, Clock::time_point deadline) noexcept {
  if (mode != LockMode::exclusive) return std::make_error_code(std::errc::invalid_argument);
  std::error_code ec = sidecar_.acquire(mode, deadline);
  if (ec) return ec;
  UniqueFd fd;
  ec = detail::open_lock_file(path_, OpenMode::write, sidecar_.options().permissions,
                              sidecar_.options().follow_symlinks, fd);
  if (!ec) ec = detail::truncate_file(fd.get());
  if (!ec) ec = detail::write_all(fd.get(), std::to_string(detail::current_pid()));
  if (!ec) ec = detail::sync_file(fd.get());
  if (ec) {
    detail::remove_file(path_);
    sidecar_.release();
  }
  return ec;
}

std::error_code PidFileLock::release() noexcept {
  if (!sidecar_.owns_lock()) return make_error_code(errc::not_locked);
  const std::error_code removed = detail::remove_file(path_);
  const std::error_code released = sidecar_.release();
  return removed ? removed : released;
}

LockInfo PidFileLock::describe() const {
  LockInfo info = sidecar_.describe();
  info.kind = "pidfile";
  info.target = path_.string();
  if (info.held) info.token = std::to_string(detail::current_pid());
  return info;
}

std::optional<long> PidFileLock::holder_pid() const {
  std::string text;
  if (detail::read_small_file(path_, text)) return std::nullopt;
  long pid = 0;
  const auto* end = text.data() + text.size();
  const auto [ptr, err] = std::from_chars(text.data(), end, pid);
  if (err != std::errc() || ptr != end || pid <= 0) return std::nullopt;
  return pid;
}

}  // namespace locksmith
