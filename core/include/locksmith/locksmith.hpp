// Umbrella header: everything in locksmith::core.
#pragma once

#include "locksmith/atomic_file.hpp"
#include "locksmith/error.hpp"
#include "locksmith/file_lock.hpp"
#include "locksmith/keep_alive.hpp"
#include "locksmith/link_lock.hpp"
#include "locksmith/lock.hpp"
#include "locksmith/lockable.hpp"
#include "locksmith/lockfile_locks.hpp"
#include "locksmith/platform.hpp"
#include "locksmith/semaphore.hpp"
#include "locksmith/spec.hpp"
#include "locksmith/unique_fd.hpp"
