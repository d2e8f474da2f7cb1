#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "file_ops.hpp"
#include "locksmith/atomic_file.hpp"
#include "locksmith/error.hpp"
#include "sys_posix.hpp"

namespace locksmith {
namespace {

constexpr int kNameAttempts = 16;

}  // namespace

AtomicFile AtomicFile::create(const std::filesystem::path& destination, AtomicOptions options,
                              std::error_code& ec) noexcept {
  AtomicFile file;
  ec.clear();
  file.options_ = options;
  const std::filesystem::path dir = destination.parent_path();
  const std::string base = destination.filename().string();
  if (base.empty()) {
    ec = std::make_error_code(std::errc::is_a_directory);
    return file;
  }
  for (int attempt = 0; attempt < kNameAttempts; ++attempt) {
    std::string hex;
    ec = detail::random_hex(6, hex);
    if (ec) return file;
    std::string name = ".";
    name.append(base).append(".").append(hex).append(".tmp");
    std::filesystem::path temp = dir / name;
    const int fd = detail::retry_on_eintr([&] {
      return ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
                    static_cast<mode_t>(options.permissions & 07777));
    });
    if (fd >= 0) {
      file.fd_.reset(fd);
      file.temp_ = std::move(temp);
      file.destination_ = destination;
      return file;
    }
    ec = detail::last_error();
    if (ec != std::errc::file_exists) return file;
  }
  return file;
}

void AtomicFile::discard() noexcept {
  if (!fd_.valid()) return;
  fd_.reset();
  ::unlink(temp_.c_str());
}

std::error_code AtomicFile::commit(std::nothrow_t) noexcept {
  if (!fd_.valid()) return make_error_code(errc::not_locked);
  if (options_.sync) {
    if (auto ec = detail::sync_file(fd_.get())) return ec;
  }
  if (options_.publish == Publish::no_clobber) {
    // link() never replaces an existing destination: EEXIST leaves it untouched.
    if (::link(temp_.c_str(), destination_.c_str()) != 0) return detail::last_error();
    ::unlink(temp_.c_str());
  } else {
    if (::rename(temp_.c_str(), destination_.c_str()) != 0) return detail::last_error();
  }
  fd_.reset();
  if (options_.sync) return detail::sync_directory(destination_.parent_path());
  return {};
}

}  // namespace locksmith
