// AtomicFile / open_atomic (portalocker.open_atomic): write a file so that readers only ever see
// no file, the old complete file or the new complete file — never a partial one.
//
// Semantics
//  - Data goes to a temporary file in the destination's directory (same filesystem), created
//    O_EXCL | O_CLOEXEC with the given permissions.
//  - commit(): fsync the data, publish, fsync the directory. Publish::no_clobber links the temp
//    file to the destination (fails with EEXIST and leaves the destination untouched if it
//    exists; portalocker's behaviour). Publish::replace renames over the destination atomically.
//  - Discard (explicit or by destruction without commit) removes the temporary file; a crash leaves
//    at most a hidden `.NAME.XXXXXX.tmp` file, never a partial destination.
//  - Durability: after commit() returns, the content and the directory entry are on stable storage
//    as far as the filesystem's fsync promises. NFS: rename is atomic on the server; clients may
//    see the old file until their attribute cache expires.
#pragma once

#include <filesystem>
#include <functional>
#include <span>
#include <string_view>
#include <system_error>

#include "locksmith/unique_fd.hpp"

namespace locksmith {

enum class Publish { no_clobber, replace };

struct AtomicOptions {
  Publish publish = Publish::no_clobber;
  unsigned permissions = 0644;  // before the process umask
  bool sync = true;             // fsync file and directory (turn off only for scratch data)
};

class AtomicFile {
 public:
  // Creates the temporary file; throws LockError naming the destination on failure.
  static AtomicFile create(const std::filesystem::path& destination, AtomicOptions options = {});
  static AtomicFile create(const std::filesystem::path& destination, AtomicOptions options,
                           std::error_code& ec) noexcept;

  AtomicFile(AtomicFile&&) noexcept;
  AtomicFile& operator=(AtomicFile&&) noexcept;
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  ~AtomicFile();  // discards unless committed

  // Writes all of `data` (retrying short writes and EINTR).
  void write(std::string_view data);
  std::error_code write(std::span<const std::byte> data) noexcept;

  void commit();
  std::error_code commit(std::nothrow_t) noexcept;
  void discard() noexcept;

  native_handle native() const noexcept { return fd_.get(); }
  const std::filesystem::path& destination() const noexcept { return destination_; }
  const std::filesystem::path& temp_path() const noexcept { return temp_; }
  bool active() const noexcept { return fd_.valid(); }

 private:
  AtomicFile() = default;
  std::filesystem::path destination_;
  std::filesystem::path temp_;
  AtomicOptions options_;
  UniqueFd fd_;
};

// Runs `write(file)` and commits; discards if `write` throws.
void open_atomic(const std::filesystem::path& destination,
                 const std::function<void(AtomicFile&)>& write, AtomicOptions options = {});

}  // namespace locksmith
