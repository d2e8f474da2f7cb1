// `locksmith probe`: is locking safe on the filesystem holding a directory? For every file
// primitive, a short stress run with competing processes (verdict SAFE / UNSAFE / UNSUPPORTED
// with its evidence), plus the filesystem's semantics found by experiment (fs_probe.hpp).
// Both work in fresh subdirectories DIR/.locksmith-probe-XXXXXX that are removed however the
// probe ends: probing a directory leaves nothing behind in it.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "locksmith/harness/report.hpp"

namespace locksmith::harness {

struct ProbeOptions {
  std::filesystem::path dir;       // empty: a fresh temporary directory, removed afterwards
  std::filesystem::path peer_dir;  // a second mount of the same export (half the workers)
  std::chrono::milliseconds duration{1000};  // stress time per primitive
  std::uint32_t workers = 4;
  std::string worker_exe;  // default: /proc/self/exe
  bool progress = false;   // one line per primitive on stderr
  // Primitives to probe (default: all file primitives of this build: flock, fcntl, ofd, sem,
  // link, mkdir, dotlock, auto). Any other name is refused.
  std::vector<std::string> only;
};

// Runs the probe. Throws std::invalid_argument when `only` names something that is no primitive
// (before any work), std::runtime_error naming the directory when it cannot be used at all
// (missing, not a directory, not writable).
Report run_probe(const ProbeOptions& options);

}  // namespace locksmith::harness
