#include "locksmith/auto_lock.hpp"

#include <cerrno>
#include <utility>

namespace locksmith {
namespace {

std::vector<Backend> default_candidates() {
#if defined(LOCKSMITH_OS_WINDOWS)
  return {Backend::windows, Backend::link};
#else
  return {Backend::flock, Backend::posix, Backend::link};
#endif
}

}  // namespace

bool is_mechanism_unavailable(std::error_code ec) noexcept {
  if (ec.category() != std::generic_category() && ec.category() != std::system_category()) {
    return false;
  }
  switch (ec.value()) {
    case ENOLCK:
    case EOPNOTSUPP:
#if defined(ENOTSUP) && ENOTSUP != EOPNOTSUPP
    case ENOTSUP:
#endif
    case EINVAL:
    case ENOSYS:
      return true;
    default:
      return false;
  }
}

AutoLock::AutoLock(std::filesystem::path path, AutoLockOptions options)
    : path_(std::move(path)), options_(std::move(options)) {
  if (options_.candidates.empty()) options_.candidates = default_candidates();
}

AutoLock::~AutoLock() = default;  // the chosen lock releases itself

std::filesystem::path AutoLock::link_path() const {
  std::filesystem::path p = path_;
  p += ".link";
  return p;
}

std::unique_ptr<Lockable> AutoLock::make(Backend b) const {
  if (b == Backend::link) {
    LinkLockOptions o;
    o.lifetime = options_.link_lifetime;
    o.permissions = options_.permissions;
    return std::make_unique<LinkLock>(link_path(), o);
  }
  LockOptions o;
  o.backend = b;
  o.permissions = options_.permissions;
  o.follow_symlinks = options_.follow_symlinks;
  return std::make_unique<FileLock>(path_, o);
}

std::string AutoLock::refusal(Backend b) {
  if (!options_.check_mount) return "";
  if (!mount_read_) {
    mount_read_ = true;
    MountInfo m;
    if (!identify_mount(path_, m)) mount_ = std::move(m);
    // An unreadable store is no evidence against any mechanism: what the mount says still counts.
    if (mount_) {
      verdicts_ = VerdictStore::cached(options_.verdicts.empty() ? VerdictStore::default_path()
                                                                 : options_.verdicts);
    }
  }
  if (!mount_) return "";
  const std::optional<SavedVerdict> saved =
      verdicts_ ? verdicts_->find(*mount_, kind_name(b)) : std::nullopt;
  if (saved && saved->verdict == "UNSAFE") {
    return "`locksmith probe --save` found it UNSAFE on this mount" +
           (saved->reason.empty() ? std::string() : " (" + saved->reason + ")");
  }
  std::string why = known_local_only(*mount_, b);
  // A FUSE daemon may forward locks after all: a SAFE the probe measured across two mounts of
  // the same storage says it does.
  if (!why.empty() && is_fuse(*mount_) && mount_->type != "fuse.sshfs" && saved &&
      saved->verdict == "SAFE" && !saved->peer.empty()) {
    why.clear();
  }
  return why;
}

Clock::time_point AutoLock::default_deadline() const noexcept {
  return policy_deadline(options_.timeout, options_.fail_when_locked);
}

std::error_code AutoLock::acquire(LockMode mode, Clock::time_point deadline) noexcept {
  try {
    if (chosen_) {
      return lock_->acquire(*chosen_ == Backend::link ? LockMode::exclusive : mode, deadline);
    }
    std::error_code ec = make_error_code(errc::no_safe_mechanism);
    refusals_.clear();
    for (const Backend b : options_.candidates) {
      if (std::string why = refusal(b); !why.empty()) {
        refusals_.push_back(std::string(kind_name(b)) + ": " + why);
        ec = make_error_code(errc::no_safe_mechanism);
        continue;
      }
      auto candidate = make(b);
      ec = candidate->acquire(b == Backend::link ? LockMode::exclusive : mode, deadline);
      if (ec && is_mechanism_unavailable(ec)) continue;
      if (!ec || is_contended(ec)) {  // the filesystem does this kind of lock: keep it
        chosen_ = b;
        lock_ = std::move(candidate);
      }
      return ec;
    }
    return ec;  // none works here: the last one's error, or no_safe_mechanism if it was refused
  } catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
  }
}

std::error_code AutoLock::release() noexcept {
  if (!lock_) return make_error_code(errc::not_locked);
  return lock_->release();
}

LockInfo AutoLock::describe() const {
  LockInfo info;
  if (lock_) info = lock_->describe();
  info.kind = "auto";
  info.mechanism = chosen_ ? std::string(to_string(*chosen_)) : "undecided";
  info.target = path_.string();
  return info;
}

}  // namespace locksmith
