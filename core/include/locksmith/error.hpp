// Errors. The currency is std::error_code: OS failures keep their errno (generic_category) or
// Win32 error (system_category); lock outcomes that are not OS failures use locksmith::errc.
// Throwing forms raise subclasses of std::system_error whose message names operation and path.
#pragma once

#include <string>
#include <string_view>
#include <system_error>

namespace locksmith {

// Lock outcomes that are not OS errors.
enum class errc {
  busy = 1,           // held by someone else and the caller asked not to wait
  timeout,            // still held by someone else at the caller's deadline
  not_locked,         // release or refresh of a lock this object does not hold
  lock_lost,          // a lease expired or its connection dropped while held
  symlink_refused,    // the lock path is a symbolic link and following was not allowed
  invalid_spec,       // a lock spec string could not be parsed
  unsupported,        // the primitive or option is not available on this platform
  cancelled,          // a wait stopped through Lockable::set_stop_token (or an internal one)
  not_regular_file,   // the lock path is a directory, device, FIFO or socket, never a lock file
  no_safe_mechanism,  // auto: every mechanism is unavailable or known not to exclude there
};

const std::error_category& lock_category() noexcept;
std::error_code make_error_code(errc e) noexcept;

// True when `ec` means "someone else holds it": busy, or timeout.
bool is_contended(std::error_code ec) noexcept;

// OS failure, or a lock outcome: names the operation and the path.
class LockError : public std::system_error {
 public:
  LockError(std::error_code ec, std::string_view operation, std::string_view target);
  const std::string& operation() const noexcept { return operation_; }
  const std::string& target() const noexcept { return target_; }

 private:
  std::string operation_;
  std::string target_;
};

// Busy and the caller asked not to wait.
class AlreadyLocked : public LockError {
 public:
  using LockError::LockError;
};

// Busy until the caller's deadline.
class LockTimeout : public AlreadyLocked {
 public:
  using AlreadyLocked::AlreadyLocked;
};

// Release (or a count change) of a lock that is not held.
class NotLocked : public LockError {
 public:
  using LockError::LockError;
};

// A lease expired or a connection dropped while the lock was held.
class LockLost : public LockError {
 public:
  using LockError::LockError;
};

// Throws the LockError subclass that matches `ec`; does nothing when `ec` is empty.
void throw_if_error(std::error_code ec, std::string_view operation, std::string_view target);

}  // namespace locksmith

template <>
struct std::is_error_code_enum<locksmith::errc> : std::true_type {};
