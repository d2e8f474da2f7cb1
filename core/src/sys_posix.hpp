// Internal helpers for POSIX system calls.
#pragma once

#include <cerrno>
#include <system_error>

namespace locksmith::detail {

// The errno of the call that just failed, as an error_code. Call it first thing after the failure.
inline std::error_code last_error() noexcept { return {errno, std::generic_category()}; }

// Repeats `fn` while it fails with EINTR (LLVM's RetryAfterSignal). Never use it for close().
template <class Fn>
auto retry_on_eintr(Fn&& fn) noexcept(noexcept(fn())) {
  for (;;) {
    auto result = fn();
    if (result != -1 || errno != EINTR) return result;
  }
}

}  // namespace locksmith::detail
