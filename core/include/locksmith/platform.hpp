// Platform detection for locksmith. This is the one place that inspects compiler macros;
// every other file tests only the LOCKSMITH_OS_* macros defined here.
#pragma once

#if defined(_WIN32)
#define LOCKSMITH_OS_WINDOWS 1
#elif defined(__linux__)
#define LOCKSMITH_OS_LINUX 1
#define LOCKSMITH_OS_POSIX 1
#elif defined(__APPLE__) || defined(__FreeBSD__) || defined(__NetBSD__) || defined(__OpenBSD__)
#define LOCKSMITH_OS_POSIX 1
#else
#error "locksmith supports POSIX systems and Windows"
#endif

namespace locksmith {

#if defined(LOCKSMITH_OS_WINDOWS)
// A Win32 HANDLE, spelled without including <windows.h>.
using native_handle = void*;
#else
// A POSIX file descriptor.
using native_handle = int;
#endif

}  // namespace locksmith
