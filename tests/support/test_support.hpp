// Test helpers shared by the locksmith suites.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace locksmith::test {

// A fresh directory under $TMPDIR (or /tmp), removed with its contents on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

// Real kernel failures on demand: installs a seccomp filter in the calling process (for good —
// call it in a forked child) under which the system calls `numbers` fail with `err`; with
// `fcntl_locks`, fcntl's lock-setting commands (F_SETLK, F_SETLKW, F_OFD_SETLK, F_OFD_SETLKW) fail
// too. With `only_if_arg` = {N, V}, the calls in `numbers` fail only when the low 32 bits of their
// argument N equal V (e.g. newfstatat with AT_SYMLINK_NOFOLLOW: lstat, not fstat). False when this
// CPU or kernel does not allow it (nothing is installed then).
bool fail_syscalls(const std::vector<long>& numbers, int err, bool fcntl_locks = false,
                   std::optional<std::pair<unsigned, std::uint32_t>> only_if_arg = std::nullopt);

}  // namespace locksmith::test
