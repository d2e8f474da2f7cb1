// Umbrella header: everything in locksmith::core.
#pragma once

#include "locksmith/atomic_file.hpp"
#include "locksmith/auto_lock.hpp"
#include "locksmith/error.hpp"
#include "locksmith/file_lock.hpp"
#include "locksmith/keep_alive.hpp"
#include "locksmith/link_lock.hpp"
#include "locksmith/lock.hpp"
#include "locksmith/lockable.hpp"
#include "locksmith/lockfile_locks.hpp"
#include "locksmith/mount.hpp"
#include "locksmith/platform.hpp"
#include "locksmith/semaphore.hpp"
#include "locksmith/spec.hpp"
#include "locksmith/unique_fd.hpp"
#if defined(LOCKSMITH_OS_POSIX)
// FileStore is implemented for POSIX only (filestore_posix.cpp): elsewhere a use of it should
// fail to compile, not to link.
#include "locksmith/filestore.hpp"
#endif
