// Lock specs: one string names any primitive, for the CLI, the harness and configuration files.
//
//   flock:PATH      FileLock, flock backend (a bare PATH means the same)
//   fcntl:PATH      FileLock, POSIX fcntl backend (process-scoped); `posix:` is an alias
//   ofd:PATH        FileLock, Linux open-file-description backend
//   sem:DIR/NAME?max=N   BoundedSemaphore with slot files DIR/NAME.NN.lock (NAME not empty)
//   link:PATH       LinkLock (flufl.lock's hard-link protocol; NFS-safe)
//   mkdir:PATH      MkdirLock (lockfile's MkdirLockFile: directory PATH.lock)
//   pidfile:PATH    PidLockFile (lockfile's PIDLockFile: PATH itself, "%d\n")
//   dotlock:PATH    DotLock (liblockfile / dotlockfile: PATH.lock)
//   auto:PATH       AutoLock: flock, else fcntl, else a link lock on PATH.link, whichever the
//                   filesystem supports and is not known to keep local (describe().mechanism
//                   says which; auto_lock.hpp has the rules)
//
// Options follow a '?' as key=value pairs joined by '&':
//   shared=1             lock() takes a shared lock
//   timeout=DURATION     how long lock() waits: 250ms, 1.5s, 2m, or plain seconds; default forever
//   fail_when_locked=1   lock() does not wait at all
//   perms=0644           creation permissions (octal, at most 0777: no setuid/setgid/sticky)
//   follow_symlinks=1    allow a symlink at the lock path
//   keep_open=1          flock:/fcntl:/ofd: keep the lock file open between acquisitions
//   max=N                semaphore size (sem: only, required)
//   lifetime=DURATION    link: and auto: only: expiry written at acquire/refresh (default 15s)
//   check_mount=0        auto: only: use flock/fcntl even where the mount or a saved probe
//                        verdict says they exclude nobody (default 1)
//   slop=DURATION        link: only: clock skew allowed before breaking (default 10s)
//   stale=auto|off       mkdir: and pidfile: only: take over a lock whose holder is gone, by the
//                        stale rule in lockfile_locks.hpp (default auto; off = lockfile's "never")
//   stale_grace=DURATION mkdir: and pidfile: only: age before a lock without a start time (one
//                        written by lockfile) may be judged (default 10s)
//   break_stale=0|1      pidfile: only: the old spelling of stale=off|auto
//   stale_age=DURATION   dotlock: only: age after which a lock without a live pid is stale
//                        (default 5m as liblockfile; 0 = never)
// Each kind accepts only the options that mean something for it, each at most once.
//
// URL-style specs (SCHEME://...) are opened by the library that registered SCHEME with
// register_lock_scheme(): locksmith::redis registers redis:// (call
// locksmith::redis::register_redis_schemes() once). The core knows redis://, redis+pubsub:// and
// redlock:// by name and reports them as unsupported until they are registered.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "locksmith/lockable.hpp"

namespace locksmith {

struct LockSpec {
  std::string kind;                            // "flock", "fcntl", "ofd", "sem", or a scheme
  std::string target;                          // path (for sem: DIR/NAME); after "://" for URLs
  std::map<std::string, std::string> options;  // raw; keys validated for the core's kinds
  bool url = false;                            // "SCHEME://TARGET": a registered scheme

  std::string to_string() const;
};

// Throws LockError with errc::invalid_spec (or errc::unsupported) naming the spec.
LockSpec parse_lock_spec(std::string_view spec);
// "250ms", "1.5s", "2m", "3" (seconds) -> duration; throws LockError(errc::invalid_spec).
Clock::duration parse_duration(std::string_view text);

std::unique_ptr<Lockable> open_lock(const LockSpec& spec);
std::unique_ptr<Lockable> open_lock(std::string_view spec);

// Opens a whole "SCHEME://..." spec; throws LockError naming the spec on bad input.
using SchemeOpener = std::unique_ptr<Lockable> (*)(std::string_view spec);
// Makes open_lock(string) hand "SCHEME://..." specs to `opener`. Registering a scheme again
// replaces its opener. Thread-safe.
void register_lock_scheme(std::string scheme, SchemeOpener opener);

}  // namespace locksmith
