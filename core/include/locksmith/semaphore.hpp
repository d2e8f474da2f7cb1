// BoundedSemaphore (portalocker.BoundedSemaphore): at most `maximum` holders across processes.
//
// Semantics
//  - Slot i is the file `{directory}/{name}.{i:02d}.lock`, exclusively locked with the configured
//    backend (default flock) — the same names and locks as portalocker, so Python and C++ holders
//    count against one bound. Slots are tried in numeric order.
//  - Holding a slot has the backend's semantics (see lock.hpp): released by release(), by closing,
//    by exit or SIGKILL of the holder.
//  - Waiting blocks on every slot at once (one short-lived thread per extra slot) and keeps the
//  first
//    one granted: waiters wake when any slot is released, without polling.
//  - Not re-entrant; one object holds at most one slot. Not shared-mode capable.
#pragma once

#include <filesystem>
#include <string>

#include "locksmith/file_lock.hpp"

namespace locksmith {

struct SemaphoreOptions {
  std::optional<Clock::duration> timeout;  // lock() waits this long; nullopt = forever
  bool fail_when_locked = false;
  Backend backend = kDefaultBackend;
  unsigned permissions = 0644;
  bool follow_symlinks = false;
};

class BoundedSemaphore : public Lockable {
 public:
  BoundedSemaphore(unsigned maximum, std::string name, std::filesystem::path directory,
                   SemaphoreOptions options = {});
  ~BoundedSemaphore() override;

  std::error_code acquire(LockMode mode, Clock::time_point deadline) noexcept override;
  std::error_code release() noexcept override;
  LockInfo describe() const override;
  Clock::time_point default_deadline() const noexcept override;
  bool supports_shared() const noexcept override { return false; }

  std::filesystem::path slot_path(unsigned number) const;
  // The slot held, or -1.
  int held_slot() const noexcept { return held_; }
  unsigned maximum() const noexcept { return maximum_; }
  const std::string& name() const noexcept { return name_; }

 private:
  LockOptions slot_options() const;

  unsigned maximum_;
  std::string name_;
  std::filesystem::path directory_;
  SemaphoreOptions options_;
  std::optional<FileLock> slot_;
  int held_ = -1;
  int failed_ = -1;  // the slot the last acquire failed on (describe().failed_path), or -1
};

// A BoundedSemaphore with a random name (portalocker.NamedBoundedSemaphore):
// "bounded_semaphore_" + 16 random hex digits from the OS, unless a name is given.
class NamedBoundedSemaphore : public BoundedSemaphore {
 public:
  NamedBoundedSemaphore(unsigned maximum, std::filesystem::path directory,
                        SemaphoreOptions options = {});
};

}  // namespace locksmith
