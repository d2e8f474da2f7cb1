// Portable parts of AtomicFile; creating, publishing and discarding the temporary file are in
// atomic_file_posix.cpp / atomic_file_win.cpp.
#include "locksmith/atomic_file.hpp"
#include "file_ops.hpp"
#include "locksmith/error.hpp"

namespace locksmith {

AtomicFile AtomicFile::create(const std::filesystem::path& destination, AtomicOptions options) {
  std::error_code ec;
  AtomicFile file = create(destination, options, ec);
  if (ec) throw LockError(ec, "cannot create temporary file for", destination.string());
  return file;
}

AtomicFile::AtomicFile(AtomicFile&& other) noexcept
    : destination_(std::move(other.destination_)),
      temp_(std::move(other.temp_)),
      options_(other.options_),
      fd_(std::move(other.fd_)) {}

AtomicFile& AtomicFile::operator=(AtomicFile&& other) noexcept {
  if (this != &other) {
    discard();
    destination_ = std::move(other.destination_);
    temp_ = std::move(other.temp_);
    options_ = other.options_;
    fd_ = std::move(other.fd_);
  }
  return *this;
}

AtomicFile::~AtomicFile() { discard(); }

std::error_code AtomicFile::write(std::span<const std::byte> data) noexcept {
  if (!fd_.valid()) return make_error_code(errc::not_locked);
  return detail::write_all(
      fd_.get(), std::string_view(reinterpret_cast<const char*>(data.data()), data.size()));
}

void AtomicFile::write(std::string_view data) {
  const std::error_code ec = write(std::as_bytes(std::span(data.data(), data.size())));
  if (ec) throw LockError(ec, "cannot write temporary file", temp_.string());
}

void AtomicFile::commit() {
  const std::error_code ec = commit(std::nothrow);
  if (ec) throw LockError(ec, "cannot publish atomic file", destination_.string());
}

void open_atomic(const std::filesystem::path& destination,
                 const std::function<void(AtomicFile&)>& write, AtomicOptions options) {
  AtomicFile file = AtomicFile::create(destination, options);
  write(file);  // if it throws, the destructor discards
  file.commit();
}

}  // namespace locksmith
