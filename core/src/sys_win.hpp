// Internal helpers for Win32 calls.
#pragma once

#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#ifndef NOMINMAX
#define NOMINMAX
#endif
#include <windows.h>

#include <system_error>

#include "locksmith/platform.hpp"

namespace locksmith::detail {

// The Win32 error of the call that just failed. Call it first thing after the failure.
inline std::error_code last_error() noexcept {
  return {static_cast<int>(::GetLastError()), std::system_category()};
}

inline HANDLE to_handle(native_handle h) noexcept { return static_cast<HANDLE>(h); }

}  // namespace locksmith::detail
