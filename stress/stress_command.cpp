#include "stress_command.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <exception>

#include "locksmith/error.hpp"
#include "run_command.hpp"

namespace locksmith::cli {

int run_stress_command(const harness::StressOptions& options, const ReportFiles& files) {
  harness::Report report;
  report.command = "stress";
  report.started_at = utc_now();
  harness::StressResult result;
  try {
    result = harness::run_stress(options);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "locksmith stress: %s\n", e.what());
    return kExitUsage;
  }
  report.elapsed_s = result.elapsed_s;
  harness::PrimitiveReport p;
  p.name = result.history.info.kind;
  p.spec = options.spec;
  p.info = result.history.info;
  p.checks = result.checks;
  harness::summarize(p, result.history);
  report.primitives.push_back(std::move(p));
  if (!options.rendezvous.empty() && !files.quiet) {
    std::printf(
        "host %u histories in %s; once every host is done, check them together with:\n"
        "  locksmith check %s\n",
        static_cast<unsigned>(options.host), result.run_dir.c_str(), options.rendezvous.c_str());
  } else if (!options.run_dir.empty() && !files.quiet) {
    std::printf("histories kept in %s (re-check with: locksmith check %s)\n",
                result.run_dir.c_str(), result.run_dir.c_str());
  }
  const int code = emit_report(report, files);
  const harness::PrimitiveReport& only = report.primitives.front();
  if (code == 0 && only.verdict == harness::PrimitiveVerdict::unsupported) {
    // Nothing was exercised: that is no verdict, and CI must not read it as a pass.
    std::fprintf(stderr, "locksmith stress: no evidence: %s\n", only.reason.c_str());
    return kExitUsage;
  }
  return code;
}

int run_probe_command(const harness::ProbeOptions& options, const ReportFiles& files) {
  const auto t0 = std::chrono::steady_clock::now();
  const std::string started = utc_now();
  harness::Report report;
  try {
    report = harness::run_probe(options);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "locksmith probe: %s\n", e.what());
    return kExitUsage;
  }
  report.started_at = started;
  report.elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return emit_report(report, files);
}

int run_check_command(const std::vector<std::string>& dirs, const ReportFiles& files) {
  harness::Report report;
  report.command = "check";
  // A rendezvous directory of a multi-host run stands for its host-* directories.
  std::vector<std::filesystem::path> paths;
  for (const auto& d : dirs) {
    std::vector<std::filesystem::path> hosts;
    std::error_code ec;
    if (!std::filesystem::exists(std::filesystem::path(d) / "run.json", ec)) {
      for (const auto& entry : std::filesystem::directory_iterator(d, ec)) {
        if (entry.path().filename().string().rfind("host-", 0) == 0) hosts.push_back(entry.path());
      }
    }
    std::sort(hosts.begin(), hosts.end());
    if (hosts.empty()) {
      paths.emplace_back(d);
    } else {
      paths.insert(paths.end(), hosts.begin(), hosts.end());
    }
  }
  harness::History history;
  try {
    history = harness::load_history(paths);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "locksmith check: %s\n", e.what());
    return kExitUsage;
  }
  if (history.events.empty()) {
    std::fprintf(stderr, "locksmith check: no events in %zu director%s\n", paths.size(),
                 paths.size() == 1 ? "y" : "ies");
    return kExitUsage;
  }
  harness::PrimitiveReport p;
  p.name = history.info.kind.empty() ? "unknown" : history.info.kind;
  p.spec = history.info.spec;
  p.info = history.info;
  p.checks = harness::check_all(history, std::nullopt);
  harness::summarize(p, history);
  report.primitives.push_back(std::move(p));
  return emit_report(report, files);
}

}  // namespace locksmith::cli
