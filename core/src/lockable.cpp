#include "locksmith/lockable.hpp"

namespace locksmith {

void Lockable::lock_mode(LockMode mode) {
  const std::error_code ec = acquire(mode, default_deadline());
  if (ec) throw_if_error(ec, "cannot lock", describe().error_target());
}

bool Lockable::try_mode(LockMode mode, Clock::time_point deadline) {
  const std::error_code ec = acquire(mode, deadline);
  if (!ec) return true;
  if (is_contended(ec)) return false;
  throw_if_error(ec, "cannot lock", describe().error_target());
  return false;
}

void Lockable::unlock() {
  const std::error_code ec = release();
  if (ec) throw_if_error(ec, "cannot unlock", describe().target);
}

}  // namespace locksmith
