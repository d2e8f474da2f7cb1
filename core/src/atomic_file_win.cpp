// AtomicFile on Windows: the temp file is published with MoveFileExW (without
// MOVEFILE_REPLACE_EXISTING for no_clobber, with it for replace), write-through.
#include <string>

#include "file_ops.hpp"
#include "locksmith/atomic_file.hpp"
#include "locksmith/error.hpp"
#include "sys_win.hpp"

namespace locksmith {

AtomicFile AtomicFile::create(const std::filesystem::path& destination, AtomicOptions options,
                              std::error_code& ec) noexcept {
  AtomicFile file;
  ec.clear();
  file.options_ = options;
  const std::string base = destination.filename().string();
  if (base.empty()) {
    ec = std::make_error_code(std::errc::is_a_directory);
    return file;
  }
  for (int attempt = 0; attempt < 16; ++attempt) {
    std::string hex;
    ec = detail::random_hex(6, hex);
    if (ec) return file;
    std::string name = ".";
    name.append(base).append(".").append(hex).append(".tmp");
    std::filesystem::path temp = destination.parent_path() / name;
    HANDLE h = ::CreateFileW(temp.c_str(), GENERIC_WRITE, FILE_SHARE_READ | FILE_SHARE_DELETE,
                             nullptr, CREATE_NEW, FILE_ATTRIBUTE_NORMAL, nullptr);
    if (h != INVALID_HANDLE_VALUE) {
      file.fd_.reset(h);
      file.temp_ = std::move(temp);
      file.destination_ = destination;
      return file;
    }
    ec = detail::last_error();
    if (::GetLastError() != ERROR_FILE_EXISTS) return file;
  }
  return file;
}

void AtomicFile::discard() noexcept {
  if (!fd_.valid()) return;
  fd_.reset();
  ::DeleteFileW(temp_.c_str());
}

std::error_code AtomicFile::commit(std::nothrow_t) noexcept {
  if (!fd_.valid()) return make_error_code(errc::not_locked);
  if (options_.sync) {
    if (auto ec = detail::sync_file(fd_.get())) return ec;
  }
  fd_.reset();  // the move needs the file closed
  DWORD flags = MOVEFILE_WRITE_THROUGH;
  if (options_.publish == Publish::replace) flags |= MOVEFILE_REPLACE_EXISTING;
  if (!::MoveFileExW(temp_.c_str(), destination_.c_str(), flags)) {
    const std::error_code ec = detail::last_error();
    ::DeleteFileW(temp_.c_str());
    return ec;
  }
  return {};
}

}  // namespace locksmith
