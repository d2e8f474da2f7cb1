#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>

#include "file_ops.hpp"
#include "sys_posix.hpp"

namespace locksmith::detail {

std::error_code open_lock_file(const std::filesystem::path& path, OpenMode mode,
                               unsigned permissions, bool follow_symlinks, UniqueFd& out) noexcept {
  int flags = O_CLOEXEC | O_NOCTTY;
  switch (mode) {
    case OpenMode::append:
      flags |= O_RDWR | O_APPEND | O_CREAT;
      break;
    case OpenMode::write:
      flags |= O_RDWR | O_CREAT;  // truncated by the caller once the lock is held
      break;
    case OpenMode::read:
      flags |= O_RDONLY;
      break;
    case OpenMode::read_write:
      flags |= O_RDWR;
      break;
  }
  if (!follow_symlinks) flags |= O_NOFOLLOW;
  const int fd = retry_on_eintr(
      [&] { return ::open(path.c_str(), flags, static_cast<mode_t>(permissions & 07777)); });
  if (fd < 0) {
    const int err = errno;
    if (err == ELOOP && !follow_symlinks) {
      // ELOOP can also mean a genuine loop in the directory part; tell the two apart.
      struct stat st {};
      if (::lstat(path.c_str(), &st) == 0 && S_ISLNK(st.st_mode)) {
        return make_error_code(errc::symlink_refused);
      }
    }
    return {err, std::generic_category()};
  }
  out.reset(fd);
  return {};
}

std::error_code names_same_file(native_handle fd, const std::filesystem::path& path,
                                bool& same) noexcept {
  struct stat by_fd {};
  struct stat by_path {};
  same = false;
  if (::fstat(fd, &by_fd) != 0) return last_error();
  if (::lstat(path.c_str(), &by_path) != 0) {
    const int err = errno;
    if (err == ENOENT) return {};
    return {err, std::generic_category()};
  }
  same = by_fd.st_dev == by_path.st_dev && by_fd.st_ino == by_path.st_ino;
  return {};
}

std::error_code truncate_file(native_handle fd) noexcept {
  if (retry_on_eintr([&] { return ::ftruncate(fd, 0); }) != 0) return last_error();
  return {};
}

std::error_code remove_file(const std::filesystem::path& path) noexcept {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return last_error();
  return {};
}

std::error_code write_all(native_handle fd, std::string_view data) noexcept {
  while (!data.empty()) {
    const ssize_t n = retry_on_eintr([&] { return ::write(fd, data.data(), data.size()); });
    if (n < 0) return last_error();
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return {};
}

std::error_code sync_file(native_handle fd) noexcept {
  if (retry_on_eintr([&] { return ::fsync(fd); }) != 0) return last_error();
  return {};
}

std::error_code sync_directory(const std::filesystem::path& dir) noexcept {
  const char* name = dir.empty() ? "." : dir.c_str();
  const int fd = retry_on_eintr([&] { return ::open(name, O_RDONLY | O_DIRECTORY | O_CLOEXEC); });
  if (fd < 0) return last_error();
  UniqueFd owner(fd);
  return sync_file(fd);
}

std::error_code read_small_file(const std::filesystem::path& path, std::string& out) noexcept {
  const int fd = retry_on_eintr([&] { return ::open(path.c_str(), O_RDONLY | O_CLOEXEC); });
  if (fd < 0) return last_error();
  UniqueFd owner(fd);
  out.clear();
  std::array<char, 512> buf{};
  for (;;) {
    const ssize_t n = retry_on_eintr([&] { return ::read(fd, buf.data(), buf.size()); });
    if (n < 0) return last_error();
    if (n == 0) return {};
    out.append(buf.data(), static_cast<std::size_t>(n));
    if (out.size() > 65536) return std::make_error_code(std::errc::file_too_large);
  }
}

long current_pid() noexcept { return static_cast<long>(::getpid()); }

std::error_code random_hex(std::size_t bytes, std::string& out) noexcept {
  std::array<unsigned char, 64> raw{};
  if (bytes > raw.size()) return std::make_error_code(std::errc::invalid_argument);
  std::size_t got = 0;
  while (got < bytes) {
    const ssize_t n = ::getrandom(raw.data() + got, bytes - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return last_error();
    }
    got += static_cast<std::size_t>(n);
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
