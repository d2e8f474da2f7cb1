#include "locksmith/error.hpp"

#include <string>

namespace locksmith {
namespace {

class LockCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "locksmith"; }
  std::string message(int value) const override {
    switch (static_cast<errc>(value)) {
      case errc::busy:
        return "already locked by someone else";
      case errc::timeout:
        return "timed out waiting for the lock";
      case errc::not_locked:
        return "not locked";
      case errc::lock_lost:
        return "lock lost";
      case errc::symlink_refused:
        return "refusing to follow a symbolic link at the lock path";
      case errc::invalid_spec:
        return "invalid lock spec";
      case errc::unsupported:
        return "not supported";
      case errc::cancelled:
        return "cancelled";
      case errc::not_regular_file:
        return "the lock path exists and is not a regular file";
      case errc::no_safe_mechanism:
        return "no locking mechanism is known to exclude other clients on this filesystem";
    }
    return "unknown locksmith error " + std::to_string(value);
  }
  std::error_condition default_error_condition(int value) const noexcept override {
    switch (static_cast<errc>(value)) {
      case errc::busy:
      case errc::timeout:
        return std::errc::resource_unavailable_try_again;
      case errc::invalid_spec:
        return std::errc::invalid_argument;
      case errc::unsupported:
        return std::errc::operation_not_supported;
      case errc::symlink_refused:
        return std::errc::too_many_symbolic_link_levels;
      default:
        return {value, *this};
    }
  }
};

std::string describe(std::string_view operation, std::string_view target) {
  std::string what;
  what.reserve(operation.size() + target.size() + 4);
  what.append(operation);
  if (!target.empty()) {
    what.append(" '").append(target).append("'");
  }
  return what;
}

}  // namespace

const std::error_category& lock_category() noexcept {
  static const LockCategory category;
  return category;
}

std::error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), lock_category()}; }

bool is_contended(std::error_code ec) noexcept { return ec == errc::busy || ec == errc::timeout; }

LockError::LockError(std::error_code ec, std::string_view operation, std::string_view target)
    : std::system_error(ec, describe(operation, target)), operation_(operation), target_(target) {}

void throw_if_error(std::error_code ec, std::string_view operation, std::string_view target) {
  if (!ec) return;
  if (ec == errc::timeout) throw LockTimeout(ec, operation, target);
  if (ec == errc::busy) throw AlreadyLocked(ec, operation, target);
  if (ec == errc::not_locked) throw NotLocked(ec, operation, target);
  if (ec == errc::lock_lost) throw LockLost(ec, operation, target);
  throw LockError(ec, operation, target);
}

}  // namespace locksmith
