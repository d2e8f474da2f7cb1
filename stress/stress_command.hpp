// `locksmith stress` and `locksmith check`.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "locksmith/harness/engine.hpp"
#include "locksmith/harness/probe.hpp"
#include "report_output.hpp"

namespace locksmith::cli {

// Runs one scenario, checks it, reports. Exit: 0 clean, 1 violation, 2 usage/environment.
int run_stress_command(harness::StressOptions options, const ReportFiles& files);

// Probes the filesystem holding a directory. Same exit codes.
// With `save_to`, the verdicts are also saved for the probed mount (and the peer's) in that
// verdict store (locksmith/mount.hpp), where `auto:` reads them.
int run_probe_command(const harness::ProbeOptions& options, const ReportFiles& files,
                      const std::optional<std::filesystem::path>& save_to = std::nullopt);

// Re-checks recorded histories (one directory per host). Same exit codes.
int run_check_command(const std::vector<std::string>& dirs, const ReportFiles& files);

}  // namespace locksmith::cli
