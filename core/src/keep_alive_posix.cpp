// KeepAlive's notification handle on POSIX: a pipe whose read end becomes readable on loss.
#include <fcntl.h>
#include <unistd.h>

#include "locksmith/keep_alive.hpp"
#include "sys_posix.hpp"

namespace locksmith {

void KeepAlive::make_notify_handle() {
  int fds[2] = {-1, -1};
  if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) {
    throw LockError(detail::last_error(), "cannot create the keep-alive pipe for",
                    lock_.describe().target);
  }
  notify_read_.reset(fds[0]);
  notify_write_.reset(fds[1]);
}

void KeepAlive::signal_notify_handle() noexcept {
  const char byte = 'L';
  (void)detail::retry_on_eintr([&] { return ::write(notify_write_.get(), &byte, 1); });
}

}  // namespace locksmith
