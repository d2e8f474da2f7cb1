// Internal: the file-system operations behind the path-based locks, one implementation per
// platform (file_ops_posix.cpp, file_ops_win.cpp).
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include "locksmith/file_lock.hpp"
#include "locksmith/unique_fd.hpp"

namespace locksmith::detail {

// Opens (creating if the mode allows) the lock file; never truncates. ELOOP from a refused
// symlink is reported as errc::symlink_refused.
std::error_code open_lock_file(const std::filesystem::path& path, OpenMode mode,
                               unsigned permissions, bool follow_symlinks, UniqueFd& out) noexcept;

// Whether `path` (not following a final symlink) still names the file open as `fd`.
// A missing path is "not the same".
std::error_code names_same_file(native_handle fd, const std::filesystem::path& path,
                                bool& same) noexcept;

std::error_code truncate_file(native_handle fd) noexcept;
// Removes `path`; a missing path is not an error.
std::error_code remove_file(const std::filesystem::path& path) noexcept;
std::error_code write_all(native_handle fd, std::string_view data) noexcept;
std::error_code sync_file(native_handle fd) noexcept;
std::error_code sync_directory(const std::filesystem::path& dir) noexcept;
std::error_code read_small_file(const std::filesystem::path& path, std::string& out) noexcept;

long current_pid() noexcept;
// Hex digits from the OS random source (getrandom / BCryptGenRandom).
std::error_code random_hex(std::size_t bytes, std::string& out) noexcept;

}  // namespace locksmith::detail
