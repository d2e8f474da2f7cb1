#include "sys_win.hpp"  // <windows.h> first: bcrypt.h needs its types

#include <bcrypt.h>

#include <algorithm>
#include <array>

#include "file_ops.hpp"

namespace locksmith::detail {

std::error_code open_lock_file(const std::filesystem::path& path, OpenMode mode,
                               unsigned /*permissions: no POSIX modes on Windows*/,
                               bool follow_symlinks, UniqueFd& out) noexcept {
  DWORD access = GENERIC_READ | GENERIC_WRITE;
  DWORD disposition = OPEN_ALWAYS;
  switch (mode) {
    case OpenMode::append:
    case OpenMode::write:
      break;
    case OpenMode::read:
      access = GENERIC_READ;
      disposition = OPEN_EXISTING;
      break;
    case OpenMode::read_write:
      disposition = OPEN_EXISTING;
      break;
  }
  DWORD flags = FILE_ATTRIBUTE_NORMAL;
  if (!follow_symlinks) flags |= FILE_FLAG_OPEN_REPARSE_POINT;
  // Handles are not inherited by child processes (bInheritHandle is false by default).
  HANDLE h =
      ::CreateFileW(path.c_str(), access, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                    nullptr, disposition, flags, nullptr);
  if (h == INVALID_HANDLE_VALUE) return last_error();
  UniqueFd fd(h);
  if (!follow_symlinks) {
    FILE_ATTRIBUTE_TAG_INFO tag{};
    if (::GetFileInformationByHandleEx(h, FileAttributeTagInfo, &tag, sizeof tag) &&
        (tag.FileAttributes & FILE_ATTRIBUTE_REPARSE_POINT) != 0) {
      return make_error_code(errc::symlink_refused);
    }
  }
  out = std::move(fd);
  return {};
}

std::error_code names_same_file(native_handle fd, const std::filesystem::path& path,
                                bool& same) noexcept {
  same = false;
  BY_HANDLE_FILE_INFORMATION a{};
  if (!::GetFileInformationByHandle(to_handle(fd), &a)) return last_error();
  HANDLE h = ::CreateFileW(path.c_str(), 0, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                           nullptr, OPEN_EXISTING, FILE_FLAG_OPEN_REPARSE_POINT, nullptr);
  if (h == INVALID_HANDLE_VALUE) {
    const DWORD err = ::GetLastError();
    if (err == ERROR_FILE_NOT_FOUND || err == ERROR_PATH_NOT_FOUND) return {};
    return {static_cast<int>(err), std::system_category()};
  }
  UniqueFd other(h);
  BY_HANDLE_FILE_INFORMATION b{};
  if (!::GetFileInformationByHandle(h, &b)) return last_error();
  same = a.dwVolumeSerialNumber == b.dwVolumeSerialNumber && a.nFileIndexHigh == b.nFileIndexHigh &&
         a.nFileIndexLow == b.nFileIndexLow;
  return {};
}

std::error_code truncate_file(native_handle fd) noexcept {
  LARGE_INTEGER zero{};
  if (!::SetFilePointerEx(to_handle(fd), zero, nullptr, FILE_BEGIN) ||
      !::SetEndOfFile(to_handle(fd))) {
    return last_error();
  }
  return {};
}

std::error_code remove_file(const std::filesystem::path& path) noexcept {
  if (!::DeleteFileW(path.c_str())) {
    const DWORD err = ::GetLastError();
    if (err != ERROR_FILE_NOT_FOUND) return {static_cast<int>(err), std::system_category()};
  }
  return {};
}

std::error_code write_all(native_handle fd, std::string_view data) noexcept {
  while (!data.empty()) {
    DWORD written = 0;
    const DWORD chunk = static_cast<DWORD>(std::min<std::size_t>(data.size(), 1u << 30));
    if (!::WriteFile(to_handle(fd), data.data(), chunk, &written, nullptr)) return last_error();
    data.remove_prefix(written);
  }
  return {};
}

std::error_code sync_file(native_handle fd) noexcept {
  if (!::FlushFileBuffers(to_handle(fd))) return last_error();
  return {};
}

// NTFS journals directory entries itself; there is no directory handle to flush.
std::error_code sync_directory(const std::filesystem::path&) noexcept { return {}; }

std::error_code read_small_file(const std::filesystem::path& path, std::string& out) noexcept {
  HANDLE h = ::CreateFileW(path.c_str(), GENERIC_READ,
                           FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, nullptr,
                           OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL, nullptr);
  if (h == INVALID_HANDLE_VALUE) return last_error();
  UniqueFd owner(h);
  out.clear();
  std::array<char, 512> buf{};
  for (;;) {
    DWORD n = 0;
    if (!::ReadFile(h, buf.data(), static_cast<DWORD>(buf.size()), &n, nullptr)) {
      return last_error();
    }
    if (n == 0) return {};
    out.append(buf.data(), n);
    if (out.size() > 65536) return std::make_error_code(std::errc::file_too_large);
  }
}

long current_pid() noexcept { return static_cast<long>(::GetCurrentProcessId()); }

std::error_code random_hex(std::size_t bytes, std::string& out) noexcept {
  std::array<unsigned char, 64> raw{};
  if (bytes > raw.size()) return std::make_error_code(std::errc::invalid_argument);
  if (::BCryptGenRandom(nullptr, raw.data(), static_cast<ULONG>(bytes),
                        BCRYPT_USE_SYSTEM_PREFERRED_RNG) != 0) {
    return std::make_error_code(std::errc::io_error);
  }
  static constexpr char kDigits[] = "0123456789abcdef";
  out.clear();
  for (std::size_t i = 0; i < bytes; ++i) {
    out.push_back(kDigits[raw[i] >> 4]);
    out.push_back(kDigits[raw[i] & 0xf]);
  }
  return {};
}

}  // namespace locksmith::detail
