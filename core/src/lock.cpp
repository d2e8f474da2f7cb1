// Portable parts of the low-level lock API; the system calls are in lock_posix.cpp / lock_win.cpp.
#include "locksmith/lock.hpp"

namespace locksmith {

std::string_view to_string(Backend b) noexcept {
  switch (b) {
    case Backend::flock:
      return "flock";
    case Backend::posix:
      return "posix";
    case Backend::ofd:
      return "ofd";
    case Backend::windows:
      return "windows";
    case Backend::link:
      return "link";
    case Backend::auto_:
      return "auto";
  }
  return "unknown";
}

std::string_view kind_name(Backend b) noexcept {
  return b == Backend::posix ? std::string_view("fcntl") : to_string(b);
}

std::string_view to_string(LockMode m) noexcept {
  return m == LockMode::exclusive ? "exclusive" : "shared";
}

std::error_code lock(native_handle h, LockFlags flags, Backend b) noexcept {
  const bool sh = has(flags, LockFlags::shared);
  const bool ex = has(flags, LockFlags::exclusive);
  if (has(flags, LockFlags::unblock) && !sh && !ex) return unlock(h, b);
  if (sh == ex) return std::make_error_code(std::errc::invalid_argument);
  const auto deadline = has(flags, LockFlags::non_blocking) ? Clock::time_point::min() : kForever;
  return lock_until(h, ex ? LockMode::exclusive : LockMode::shared, b, deadline);
}

}  // namespace locksmith
