// Windows lock backend: LockFileEx on the first 64 KiB, the range portalocker locks, so Python
// and C++ processes exclude each other on Windows too.
//
// Waiting: a blocking LockFileEx cannot be given a deadline on a synchronous handle, and Wine
// never completes (nor cancels) one on an overlapped handle, so timed waits retry the
// non-blocking call with exponential backoff (50 µs .. 10 ms). A wait without deadline is the
// blocking call.
#include <algorithm>
#include <thread>

#include "locksmith/error.hpp"
#include "locksmith/lock.hpp"
#include "sys_win.hpp"
#include "wait.hpp"

namespace locksmith {
namespace detail {
namespace {

constexpr DWORD kRangeLow = 0x10000;

bool is_busy_win32(DWORD err) noexcept {
  return err == ERROR_LOCK_VIOLATION || err == ERROR_IO_PENDING;
}

}  // namespace

int lock_call(native_handle fd, LockMode mode, Backend b, bool wait) noexcept {
  if (b != Backend::windows) {
    ::SetLastError(ERROR_NOT_SUPPORTED);
    return -1;
  }
  DWORD flags = mode == LockMode::exclusive ? LOCKFILE_EXCLUSIVE_LOCK : 0;
  if (!wait) flags |= LOCKFILE_FAIL_IMMEDIATELY;
  OVERLAPPED ov{};
  return ::LockFileEx(to_handle(fd), flags, 0, kRangeLow, 0, &ov) ? 0 : -1;
}

bool is_busy_errno(int err) noexcept { return is_busy_win32(static_cast<DWORD>(err)); }

void Waiter::cancel() noexcept { cancelled_.store(true, std::memory_order_release); }

bool Waiter::arm_now_locked() noexcept { return false; }

std::error_code Waiter::wait_polling(native_handle fd, LockMode mode, Backend b,
                                     Clock::time_point deadline) noexcept {
  auto backoff = std::chrono::microseconds(50);
  for (;;) {
    if (cancelled_.load(std::memory_order_acquire)) return make_error_code(errc::cancelled);
    if (lock_call(fd, mode, b, false) == 0) return {};
    const DWORD err = ::GetLastError();
    if (!is_busy_win32(err)) return {static_cast<int>(err), std::system_category()};
    const auto now = Clock::now();
    if (now >= deadline) return make_error_code(errc::timeout);
    std::this_thread::sleep_for(std::min<Clock::duration>(backoff, deadline - now));
    backoff = std::min<std::chrono::microseconds>(backoff * 2, std::chrono::milliseconds(10));
  }
}

std::error_code Waiter::wait(native_handle fd, LockMode mode, Backend b,
                             Clock::time_point deadline) noexcept {
  return wait_polling(fd, mode, b, deadline);
}

}  // namespace detail

int wake_signal() noexcept { return 0; }

std::error_code lock_until(native_handle h, LockMode mode, Backend b,
                           Clock::time_point deadline) noexcept {
  if (b != Backend::windows) return make_error_code(errc::unsupported);
  if (detail::lock_call(h, mode, b, false) == 0) return {};
  const DWORD err = ::GetLastError();
  if (!detail::is_busy_win32(err)) return {static_cast<int>(err), std::system_category()};
  if (deadline == kForever) {
    if (detail::lock_call(h, mode, b, true) == 0) return {};
    return detail::last_error();
  }
  if (Clock::now() >= deadline) return make_error_code(errc::busy);
  detail::Waiter waiter;
  return waiter.wait(h, mode, b, deadline);
}

std::error_code unlock(native_handle h, Backend b) noexcept {
  if (b != Backend::windows) return make_error_code(errc::unsupported);
  OVERLAPPED ov{};
  if (!::UnlockFileEx(detail::to_handle(h), 0, detail::kRangeLow, 0, &ov)) {
    return detail::last_error();
  }
  return {};
}

}  // namespace locksmith
