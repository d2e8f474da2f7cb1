// KeepAlive's notification handle on Windows: a manual-reset event set on loss.
#include "locksmith/keep_alive.hpp"
#include "sys_win.hpp"

namespace locksmith {

void KeepAlive::make_notify_handle() {
  HANDLE event = ::CreateEventW(nullptr, TRUE, FALSE, nullptr);
  if (event == nullptr) {
    throw LockError(detail::last_error(), "cannot create the keep-alive event for",
                    lock_.describe().target);
  }
  notify_read_.reset(event);
}

void KeepAlive::signal_notify_handle() noexcept {
  ::SetEvent(detail::to_handle(notify_read_.get()));
}

}  // namespace locksmith
