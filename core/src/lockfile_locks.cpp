// Portable parts of MkdirLock, PidLockFile and DotLock: names, options, describe(). The protocols
// themselves are in lockfile_locks_posix.cpp; on Windows acquire() reports errc::unsupported.
#include <string>

#include "locksmith/lockfile_locks.hpp"
#include "locksmith/platform.hpp"

namespace locksmith {

namespace {

// Python's os.path.abspath: absolute and normalised, without a trailing separator.
std::filesystem::path abspath(const std::filesystem::path& path) {
  std::error_code ec;
  std::filesystem::path abs = std::filesystem::absolute(path, ec);
  if (ec) abs = path;
  abs = abs.lexically_normal();
  if (!abs.has_filename() && abs.has_parent_path() && abs != abs.root_path()) {
    abs = abs.parent_path();
  }
  return abs;
}

}  // namespace

// --- MkdirLock ---------------------------------------------------------------------------------

MkdirLock::MkdirLock(std::filesystem::path path, MkdirLockOptions options)
    : path_(std::move(path)), options_(options) {
  lock_path_ = abspath(path_);
  lock_path_ += ".lock";
}

MkdirLock::~MkdirLock() {
  if (held_) (void)MkdirLock::release();  // this class's own release: no virtual dispatch here
}

Clock::time_point MkdirLock::default_deadline() const noexcept {
  return policy_deadline(options_.timeout, options_.fail_when_locked);
}

LockInfo MkdirLock::describe() const {
  LockInfo info;
  info.kind = "mkdir";
  info.mechanism = "mkdir";
  info.target = lock_path_.string();
  info.held = held_;
  if (held_) {
    info.mode = LockMode::exclusive;
    info.token = unique_name_;
  }
  return info;
}

// --- PidLockFile -------------------------------------------------------------------------------

PidLockFile::PidLockFile(std::filesystem::path path, PidLockFileOptions options)
    : path_(std::move(path)), options_(options) {}

PidLockFile::~PidLockFile() {
  if (held_) (void)PidLockFile::release();  // this class's own release: no virtual dispatch here
}

Clock::time_point PidLockFile::default_deadline() const noexcept {
  return policy_deadline(options_.timeout, options_.fail_when_locked);
}

LockInfo PidLockFile::describe() const {
  LockInfo info;
  info.kind = "pidfile";
  info.mechanism = "o_excl";
  info.target = path_.string();
  info.held = held_;
  if (held_) {
    info.mode = LockMode::exclusive;
    info.token = std::to_string(owner_pid_);
  }
  return info;
}

// --- DotLock -----------------------------------------------------------------------------------

DotLock::DotLock(std::filesystem::path file, DotLockOptions options)
    : file_(std::move(file)), options_(options) {
  lock_path_ = file_;
  lock_path_ += ".lock";
}

DotLock::~DotLock() {
  if (held_) (void)DotLock::release();  // this class's own release: no virtual dispatch here
}

Clock::time_point DotLock::default_deadline() const noexcept {
  return policy_deadline(options_.timeout, options_.fail_when_locked);
}

LockInfo DotLock::describe() const {
  LockInfo info;
  info.kind = "dotlock";
  info.mechanism = "link";
  info.target = lock_path_.string();
  info.held = held_;
  if (held_) {
    info.mode = LockMode::exclusive;
    info.token = std::to_string(owner_pid_);
  }
  return info;
}

#if defined(LOCKSMITH_OS_WINDOWS)
// These conventions are POSIX ones (pids, link(), mkdir-as-lock in lockfile's POSIX flavour).

std::error_code MkdirLock::acquire(LockMode, Clock::time_point) noexcept {
  return make_error_code(errc::unsupported);
}
std::error_code MkdirLock::release() noexcept { return make_error_code(errc::not_locked); }
bool MkdirLock::is_locked() const noexcept { return false; }
std::error_code MkdirLock::break_lock() noexcept { return make_error_code(errc::unsupported); }
std::filesystem::path MkdirLock::unique_path() const { return lock_path_ / unique_name_; }

std::error_code PidLockFile::acquire(LockMode, Clock::time_point) noexcept {
  return make_error_code(errc::unsupported);
}
std::error_code PidLockFile::release() noexcept { return make_error_code(errc::not_locked); }
bool PidLockFile::is_locked() const noexcept { return false; }
std::optional<long> PidLockFile::read_pid() const { return std::nullopt; }
std::error_code PidLockFile::break_lock() noexcept { return make_error_code(errc::unsupported); }

std::error_code DotLock::acquire(LockMode, Clock::time_point) noexcept {
  return make_error_code(errc::unsupported);
}
std::error_code DotLock::release() noexcept { return make_error_code(errc::not_locked); }
bool DotLock::is_locked() const noexcept { return false; }
std::error_code DotLock::touch() noexcept { return make_error_code(errc::unsupported); }
bool DotLock::is_valid() const noexcept { return false; }
#endif

}  // namespace locksmith
